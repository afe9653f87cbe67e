package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor/qemu"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store/memstore"
)

// guestNetEnv: a qemu cluster (no agents) and VM WEB01's record with
// two adapters, the first with a reserved address, written directly: the
// reports are the agents' (internal/nodeagent/qemurun/net.go), written here by hand.
func guestNetEnv(t *testing.T) (*Engine, func(VM), func(node string, g GuestNet)) {
	t.Helper()
	ctx := context.Background()
	e, err := openT(Config{Store: memstore.New(), DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	mustHosts(t, e, seedSpec(y21, 21), seedSpec(y22, 22))
	cs := seedCluster("HVCLUSTER", y21, y22)
	cs.Hypervisor = HypervisorQEMU
	if _, err := e.CreateCluster(ctx, cs); err != nil {
		t.Fatal(err)
	}
	putVM := func(v VM) {
		if _, err := e.st.Commit(ctx, nil, []store.Op{putJSON(vmKey("HVCLUSTER", "WEB01"), v)}); err != nil {
			t.Fatal(err)
		}
	}
	report := func(node string, g GuestNet) {
		if _, err := e.st.Commit(ctx, nil, []store.Op{putJSON(qemu.GuestNetKey("HVCLUSTER", node, "WEB01"), g)}); err != nil {
			t.Fatal(err)
		}
	}
	return e, putVM, report
}

func TestGuestAddressesFollowReportsAndMigrations(t *testing.T) {
	ctx := context.Background()
	e, putVM, report := guestNetEnv(t)
	vm := VM{VMSpec: VMSpec{Cluster: "HVCLUSTER", Name: "WEB01", Adapters: []VMAdapter{{Switch: "Lab"}, {Switch: "Public"}}},
		Node: y21, Token: 4, Status: VMRunning, AdapterAddresses: []string{"10.77.0.2/24", ""}}
	putVM(vm)
	got := func() string {
		t.Helper()
		a, err := e.GuestAddresses(ctx, "HVCLUSTER", "WEB01")
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%q", a)
	}
	if g := got(); g != `["" ""]` {
		t.Fatalf("before any report: %s", g)
	}
	report(y21, GuestNet{Node: y21, VM: "WEB01", Token: 3, Addresses: []string{"10.77.0.2/24", ""}})
	if g := got(); g != `["" ""]` {
		t.Fatalf("a report of an earlier ownership counts: %s", g)
	}
	report(y21, GuestNet{Node: y21, VM: "WEB01", Token: 4, Addresses: []string{"10.77.0.2/24", ""}})
	if g := got(); g != `["10.77.0.2/24" ""]` {
		t.Fatalf("the owner's report: %s", g)
	}
	// Live-migrated to Y-22 (token 5): Y-21's report stands until Y-22's.
	vm.Node, vm.Token = y22, 5
	vm.LastMigration = &MigrationRecord{Type: MigrationLive, From: y21, To: y22, Token: 5}
	putVM(vm)
	if g := got(); g != `["10.77.0.2/24" ""]` {
		t.Fatalf("right after a live migration: %s", g)
	}
	// A cold boot after the move: the guest starts without its address.
	vm.LastMigration.ColdBoot = "the saved state was unusable"
	putVM(vm)
	if g := got(); g != `["" ""]` {
		t.Fatalf("after a cold boot on the target: %s", g)
	}
	vm.LastMigration.ColdBoot = ""
	putVM(vm)
	report(y22, GuestNet{Node: y22, VM: "WEB01", Token: 5, Addresses: []string{"", ""}})
	if g := got(); g != `["" ""]` {
		t.Fatalf("the new owner's report wins: %s", g)
	}
	// A report of an address the adapter no longer has does not count.
	report(y22, GuestNet{Node: y22, VM: "WEB01", Token: 5, Addresses: []string{"10.77.0.9/24", ""}})
	if g := got(); g != `["" ""]` {
		t.Fatalf("a stale address: %s", g)
	}
	report(y22, GuestNet{Node: y22, VM: "WEB01", Token: 5, Addresses: []string{"10.77.0.2/24", ""}})
	if g := got(); g != `["10.77.0.2/24" ""]` {
		t.Fatalf("the new owner's report: %s", g)
	}
	vm.Status = VMOff
	putVM(vm)
	if g := got(); g != `["" ""]` {
		t.Fatalf("an off VM: %s", g)
	}
}

// Waiting: done once every adapter with a reserved address has one seen;
// past the timeout a GuestNetTimeoutError names the VM, its node, the
// adapter (switch, address) and the timeout.
func TestWaitGuestAddressesTimesOutNamingTheAdapter(t *testing.T) {
	ctx := context.Background()
	e, putVM, report := guestNetEnv(t)
	putVM(VM{VMSpec: VMSpec{Cluster: "HVCLUSTER", Name: "WEB01", Adapters: []VMAdapter{{Switch: "Lab"}, {Switch: "Public"}}},
		Node: y21, Token: 4, Status: VMRunning, AdapterAddresses: []string{"10.77.0.2/24", ""}})
	var told []string
	_, err := e.WaitGuestAddresses(ctx, "HVCLUSTER", "WEB01", 600*time.Millisecond, func(m []string, _ time.Duration) {
		told = append(told, strings.Join(m, ","))
	})
	var te *GuestNetTimeoutError
	if !errors.As(err, &te) || !errors.Is(err, ErrGuestNetTimeout) ||
		!strings.Contains(err.Error(), `VM "WEB01" on Y-21-2k8x64: no address seen on network_adapters[0] (switch "Lab", reserved 10.77.0.2/24) within 600ms (wait_for_ip)`) {
		t.Fatalf("err %v", err)
	}
	if len(told) != 1 || told[0] != `network_adapters[0] (switch "Lab", reserved 10.77.0.2/24)` {
		t.Fatalf("progress %q", told)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		report(y21, GuestNet{Node: y21, VM: "WEB01", Token: 4, Addresses: []string{"10.77.0.2/24", ""}})
	}()
	got, err := e.WaitGuestAddresses(ctx, "HVCLUSTER", "WEB01", 10*time.Second, nil)
	if err != nil || fmt.Sprint(got) != "[10.77.0.2/24 ]" {
		t.Fatalf("after the report: %q %v", got, err)
	}
}
