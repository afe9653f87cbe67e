package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func mustVM(t *testing.T, e *Engine, s VMSpec) VM {
	t.Helper()
	vm, err := e.CreateVM(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

func getVM(t *testing.T, e *Engine, name string) VM {
	t.Helper()
	vm, err := e.GetVM(context.Background(), "HVCLUSTER", name)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

func setMaintenance(t *testing.T, e *Engine, name string, on bool) (Host, error) {
	t.Helper()
	h, err := e.GetHost(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	s := h.HostSpec
	s.Maintenance = on
	return e.UpdateHost(context.Background(), s)
}

// TestMaintenanceDrain: maintenance = true moves every VM off the host
// (running ones live, an off one by owner change), as PlanDrain said;
// new VMs keep off it; a pinned VM stays away with a plan warning and
// moves back in the plan after maintenance ends; unpinned VMs produce no
// change; one owner at a time throughout.
func TestMaintenanceDrain(t *testing.T) {
	ctx := context.Background()
	e, vol := vmEnv(t, seedSpec(y21, 21), seedSpec(y22, 22), seedSpec(y23, 23))
	web := vmSpec(vol, "WEB01", 4096)
	web.OwnerNode = y21
	free := vmSpec(vol, "APP01", 2048)
	free.PreferredOwners = []string{y21}
	off := vmSpec(vol, "OFF01", 1024)
	off.OwnerNode, off.State = y21, VMOff
	for _, s := range []VMSpec{web, free, off} {
		mustVM(t, e, s)
	}
	off.OwnerNode = ""
	if _, err := e.UpdateVM(ctx, off); err != nil { // unpin: it stays on y21
		t.Fatal(err)
	}
	for _, n := range []string{"WEB01", "APP01", "OFF01"} {
		if vm := getVM(t, e, n); vm.Node != y21 {
			t.Fatalf("%s on %s before the drain", n, vm.Node)
		}
	}

	plan, err := e.PlanDrain(ctx, "HVCLUSTER", []string{y21}, ReasonMaintenance)
	if err != nil || len(plan) != 3 {
		t.Fatalf("PlanDrain: %v %+v", err, plan)
	}
	want := map[string]string{}
	for _, m := range plan {
		want[m.VM] = m.To
		if m.From != y21 || m.To == y21 {
			t.Errorf("planned move %+v", m)
		}
		switch m.VM {
		case "OFF01":
			if m.Type != MigrationOffline {
				t.Errorf("off VM: %+v", m)
			}
		default:
			if m.Type != MigrationLive || !strings.Contains(m.Summary(), m.VM+" will be live-migrated from "+y21+" to ") ||
				!strings.HasSuffix(m.Summary(), "(maintenance)") {
				t.Errorf("running VM: %+v %q", m, m.Summary())
			}
		}
		if m.Pinned != (m.VM == "WEB01") {
			t.Errorf("pinned flag: %+v", m)
		}
	}

	h, err := setMaintenance(t, e, y21, true)
	if err != nil || h.State() != HostMaintenance {
		t.Fatalf("maintenance on: %v %+v", err, h)
	}
	for name, to := range want {
		vm := getVM(t, e, name)
		if vm.Node != to || vm.Pending != nil {
			t.Errorf("%s on %s (pending %v), planned %s", name, vm.Node, vm.Pending, to)
		}
		if name == "OFF01" {
			runningOn(t, e, name, "")
			continue
		}
		if vm.Status != VMRunning || vm.LastMigration == nil || vm.LastMigration.Type != MigrationLive {
			t.Errorf("%s after the drain: %s %+v", name, vm.Status, vm.LastMigration)
		}
		runningOn(t, e, name, to)
	}
	// New placements keep off it; a new pin on it is an error naming owner_node.
	if vm := mustVM(t, e, vmSpec(vol, "NEW01", 1024)); vm.Node == y21 {
		t.Errorf("new VM placed on the host in maintenance")
	}
	pinned := vmSpec(vol, "NEW02", 1024)
	pinned.OwnerNode = y21
	if _, err := e.CreateVM(ctx, pinned); !isAttr(err, "owner_node") {
		t.Errorf("pin onto a host in maintenance: %v", err)
	}
	// Plans: unpinned no change; pinned stays with a reason.
	if p, err := e.PlanVM(ctx, free); err != nil || p.Move || p.Changed {
		t.Errorf("unpinned VM plan: %v %+v", err, p)
	}
	if p, err := e.PlanVM(ctx, web); err != nil || p.Move || !p.Stay || !strings.Contains(p.StayReason, "maintenance") {
		t.Errorf("pinned VM plan during maintenance: %v %+v", err, p)
	}
	// Maintenance again is a no-op drain.
	if _, err := setMaintenance(t, e, y21, true); err != nil {
		t.Fatal(err)
	}
	if _, err := setMaintenance(t, e, y21, false); err != nil {
		t.Fatal(err)
	}
	p, err := e.PlanVM(ctx, web)
	if err != nil || !p.Move || p.To != y21 || p.Type != MigrationLive {
		t.Fatalf("pinned VM plan after maintenance: %v %+v", err, p)
	}
	if vm, err := e.UpdateVM(ctx, web); err != nil || vm.Node != y21 {
		t.Fatalf("moving the pinned VM back: %v %+v", err, vm)
	}
	if p, err := e.PlanVM(ctx, free); err != nil || p.Move {
		t.Errorf("unpinned VM after maintenance (failback prevent): %v %+v", err, p)
	}
	ownerChain(t, e)
	volumeClean(t, vol)
}

// TestMaintenanceDrainRefused: a VM that fits on no other node refuses
// maintenance before anything changes, naming the VM and why.
func TestMaintenanceDrainRefused(t *testing.T) {
	ctx := context.Background()
	e, vol := vmEnv(t)
	only := vmSpec(vol, "DB01", 2048)
	only.PossibleOwners = []string{y21}
	mustVM(t, e, only)
	big := vmSpec(vol, "BIG01", 20000)
	big.OwnerNode = y21
	mustVM(t, e, big)
	mustVM(t, e, func() VMSpec { s := vmSpec(vol, "FILL01", 20000); s.OwnerNode = y22; return s }())

	_, err := setMaintenance(t, e, y21, true)
	var de *DrainError
	if !errors.As(err, &de) || !errors.Is(err, ErrInvalid) || de.Attribute != "maintenance" || len(de.Misfits) != 2 {
		t.Fatalf("want a DrainError naming both VMs, got %v", err)
	}
	msg := err.Error()
	for _, s := range []string{"DB01", "BIG01", "not in possible_owners", "memory", "nothing was moved"} {
		if !strings.Contains(strings.ToLower(msg), strings.ToLower(s)) {
			t.Errorf("error lacks %q:\n%s", s, msg)
		}
	}
	if h, _ := e.GetHost(ctx, y21); h.Maintenance {
		t.Errorf("maintenance committed although the drain was refused")
	}
	for _, n := range []string{"DB01", "BIG01"} {
		if vm := getVM(t, e, n); vm.Node != y21 || vm.Token != 1 {
			t.Errorf("%s moved: %+v", n, vm)
		}
	}
}

// TestNodeRemovalDrains: removing a node moves its VMs first; a removal
// whose VMs fit nowhere, or that would lose quorum, is refused.
func TestNodeRemovalDrains(t *testing.T) {
	ctx := context.Background()
	e, vol := vmEnv(t, seedSpec(y21, 21), seedSpec(y22, 22), seedSpec(y23, 23))
	a := vmSpec(vol, "WEB01", 2048)
	a.OwnerNode = y23
	mustVM(t, e, a)
	b := vmSpec(vol, "WEB02", 2048)
	b.PreferredOwners = []string{y23}
	mustVM(t, e, b)

	two := seedCluster("HVCLUSTER", y21, y22)
	moves, err := e.PlanNodeRemoval(ctx, two)
	if err != nil || len(moves) != 2 || moves[0].Reason != ReasonNodeRemoval {
		t.Fatalf("PlanNodeRemoval: %v %+v", err, moves)
	}
	if _, err := e.UpdateCluster(ctx, two); err != nil {
		t.Fatal(err)
	}
	for _, m := range moves {
		if vm := getVM(t, e, m.VM); vm.Node != m.To || vm.Status != VMRunning {
			t.Errorf("%s: %+v, planned %s", m.VM, vm, m.To)
		}
		runningOn(t, e, m.VM, m.To)
	}
	if h, _ := e.GetHost(ctx, y23); h.Cluster != "" {
		t.Errorf("y23 still a node: %+v", h)
	}

	// A VM that only y22 may run refuses y22's removal, nothing moved.
	c := vmSpec(vol, "DB01", 1024)
	c.PossibleOwners = []string{y22}
	mustVM(t, e, c)
	one := seedCluster("HVCLUSTER", y21)
	_, err = e.PlanNodeRemoval(ctx, one)
	var de *DrainError
	if !errors.As(err, &de) || de.Attribute != "nodes" || len(de.Misfits) != 1 || de.Misfits[0].VM != "DB01" {
		t.Fatalf("plan: want DrainError on DB01, got %v", err)
	}
	before := getVM(t, e, "WEB02")
	if _, err := e.UpdateCluster(ctx, one); !errors.As(err, &de) {
		t.Fatalf("apply: want DrainError, got %v", err)
	}
	if after := getVM(t, e, "WEB02"); after.Token != before.Token {
		t.Errorf("a refused removal moved VMs")
	}
	// Quorum: with y22 down, removing y21 (up) would leave 0 of 1.
	if err := e.DeleteVM(ctx, "HVCLUSTER", "DB01"); err != nil {
		t.Fatal(err)
	}
	three := seedCluster("HVCLUSTER", y21, y22, y23)
	if _, err := e.UpdateCluster(ctx, three); err != nil {
		t.Fatal(err)
	}
	if _, err := e.MarkHostDown(ctx, y23, DownByLab); err != nil {
		t.Fatal(err)
	}
	rm := seedCluster("HVCLUSTER", y22, y23)
	if _, err := e.PlanNodeRemoval(ctx, rm); !errors.Is(err, ErrQuorumLost) || !strings.Contains(err.Error(), "would leave") {
		t.Fatalf("plan of a removal losing quorum: %v", err)
	}
	if _, err := e.UpdateCluster(ctx, rm); !errors.Is(err, ErrQuorumLost) {
		t.Fatalf("apply of a removal losing quorum: %v", err)
	}
	ownerChain(t, e)
}
