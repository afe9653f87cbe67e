package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store/memstore"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/vhd"
)

const (
	y21 = "Y-21-2k8x64"
	y22 = "Y-22-2k8x64"
	y23 = "Y-23-2k8x64"
)

// vmEnv is an engine on a memstore with a real embedded SAN in a temp
// dir: the seed's hosts, a cluster of them and volume O:.
func vmEnv(t *testing.T, hosts ...HostSpec) (*Engine, Volume) {
	t.Helper()
	ctx := context.Background()
	e, err := openT(Config{Store: memstore.New(), DataDir: t.TempDir(), Clock: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if len(hosts) == 0 {
		hosts = []HostSpec{seedSpec(y21, 21), seedSpec(y22, 22)}
	}
	mustHosts(t, e, hosts...)
	names := make([]string, len(hosts))
	for i, h := range hosts {
		names[i] = h.Name
	}
	if _, err := e.CreateCluster(ctx, seedCluster("HVCLUSTER", names...)); err != nil {
		t.Fatal(err)
	}
	vol, err := e.CreateVolume(ctx, VolumeSpec{Cluster: "HVCLUSTER", LUN: "lun0", SizeGiB: 200, Label: "VMSTORE",
		DriveLetter: "O", BlockSize: 4096, NodeSlots: 16})
	if err != nil {
		t.Fatal(err)
	}
	return e, vol
}

func vmSpec(vol Volume, name string, mem int64) VMSpec {
	return VMSpec{Cluster: vol.Cluster, Volume: vol.ID, Name: name, MemoryMB: mem, ProcessorCount: 2,
		VHD: VHDSpec{SizeGiB: 40, Type: VHDDynamic}, Adapters: []VMAdapter{{Switch: "Public"}},
		AntiAffinityMode: "preferred", Migration: MigrationLive, State: VMRunning,
		Failback: FailbackSpec{Mode: FailbackPrevent}, MaxFailures: 1, FailurePeriodHours: 6}
}

// ownerChain checks, from the event history alone, that every VM had one
// owner at a time: its vm.owner_changed events chain (from = previous to)
// with tokens growing by one.
func ownerChain(t *testing.T, e *Engine) map[string][]Event {
	t.Helper()
	evs, err := e.Events(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	chains := map[string][]Event{}
	for _, ev := range evs {
		if ev.Kind != EventVMOwnerChanged {
			continue
		}
		prev := chains[ev.Subject]
		if n := len(prev); n > 0 {
			last := prev[n-1]
			if ev.Detail["from"] != last.Detail["to"] {
				t.Errorf("VM %s: owner change at rev %d from %q, but the owner was %q", ev.Subject, ev.Revision, ev.Detail["from"], last.Detail["to"])
			}
			lt, _ := strconv.Atoi(last.Detail["token"])
			nt, _ := strconv.Atoi(ev.Detail["token"])
			if nt != lt+1 || ev.Detail["previous_token"] != last.Detail["token"] {
				t.Errorf("VM %s: token %d after %d (previous_token %s)", ev.Subject, nt, lt, ev.Detail["previous_token"])
			}
		} else if ev.Detail["from"] != "" {
			t.Errorf("VM %s: first owner change is from %q", ev.Subject, ev.Detail["from"])
		}
		chains[ev.Subject] = append(prev, ev)
	}
	return chains
}

// runningOn asserts the simulator runs the VM on exactly node (or nowhere
// when node is "").
func runningOn(t *testing.T, e *Engine, name, node string) {
	t.Helper()
	where, err := e.Simulator("HVCLUSTER").Where(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	var running []string
	for _, st := range where {
		if st.State == hypervisor.Running {
			running = append(running, st.Node)
		}
	}
	if node == "" && len(running) == 0 || len(running) == 1 && running[0] == node {
		return
	}
	t.Fatalf("VM %s runs on %v, want only on %q (records %+v)", name, running, node, where)
}

func volumeClean(t *testing.T, vol Volume) {
	t.Helper()
	dev, err := kayofs.OpenDevice(vol.Device)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	probs, err := kayofs.Check(dev)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		t.Errorf("kayofs check: %s", p)
	}
}

func TestVMLifecycleAndMigrations(t *testing.T) {
	ctx := context.Background()
	amd := seedSpec(y23, 23)
	amd.ProcessorVendor = "amd"
	e, vol := vmEnv(t, seedSpec(y21, 21), seedSpec(y22, 22), amd)

	s := vmSpec(vol, "WEB01", 2048)
	s.OwnerNode = y21
	vm, err := e.CreateVM(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if vm.Node != y21 || vm.Token != 1 || vm.Status != VMRunning || vm.Pending != nil {
		t.Fatalf("created: %+v", vm)
	}
	if vm.VHDPath != `O:\WEB01\WEB01.vhd` || vm.ConfigPath != `O:\WEB01\WEB01.xml` {
		t.Errorf("paths %s %s", vm.VHDPath, vm.ConfigPath)
	}
	if vm.Adapters[0].MAC != MACAddress("HVCLUSTER", "WEB01", 0) || !strings.HasPrefix(vm.Adapters[0].MAC, "00-15-5D-") {
		t.Errorf("MAC %q", vm.Adapters[0].MAC)
	}
	runningOn(t, e, "WEB01", y21)
	err = e.WithVolume(ctx, vol.ID, y22, func(fv *kayofs.Volume) error {
		fi, err := fv.Stat("WEB01/WEB01.vhd")
		if err != nil {
			return err
		}
		if fi.Size > 1<<20 {
			return fmt.Errorf("dynamic 40 GiB VHD is %d bytes: should be headers only", fi.Size)
		}
		f, err := fv.Open("WEB01/WEB01.xml")
		if err != nil {
			return err
		}
		b := make([]byte, 4096)
		n, _ := f.ReadAt(b, 0)
		if !strings.Contains(string(b[:n]), `<pathname>O:\WEB01\WEB01.vhd</pathname>`) {
			return fmt.Errorf("config file:\n%s", b[:n])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Live migration: same vendor, running.
	s.OwnerNode = y22
	vm, err = e.UpdateVM(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if vm.Node != y22 || vm.Token != 2 || vm.Status != VMRunning || vm.LastMigration == nil || vm.LastMigration.Type != MigrationLive ||
		vm.LastMigration.DowntimeMs <= 0 || vm.LastMigration.Rounds < 2 || vm.LastMigration.From != y21 {
		t.Fatalf("after live migration: %+v / %+v", vm, vm.LastMigration)
	}
	runningOn(t, e, "WEB01", y22)

	// Quick migration: the AMD node.
	s.OwnerNode = y23
	vm, err = e.UpdateVM(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if vm.Node != y23 || vm.Token != 3 || vm.LastMigration.Type != MigrationQuick || vm.LastMigration.DowntimeMs < 1000 {
		t.Fatalf("after quick migration: %+v", vm.LastMigration)
	}
	runningOn(t, e, "WEB01", y23)

	// Off: memory changes in place; the move is only an owner change.
	s.State = VMOff
	vm, err = e.UpdateVM(ctx, s)
	if err != nil || vm.Status != VMOff {
		t.Fatalf("stop: %v %+v", err, vm)
	}
	runningOn(t, e, "WEB01", "")
	s.OwnerNode, s.MemoryMB, s.VHD.SizeGiB = y21, 4096, 60
	vm, err = e.UpdateVM(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if vm.Node != y21 || vm.LastMigration.Type != MigrationOffline || vm.Status != VMOff || vm.MemoryMB != 4096 {
		t.Fatalf("offline move: %+v %+v", vm, vm.LastMigration)
	}
	err = e.WithVolume(ctx, vol.ID, y21, func(fv *kayofs.Volume) error {
		f, err := fv.Open("WEB01/WEB01.vhd")
		if err != nil {
			return err
		}
		fi, _ := f.Stat()
		d, err := vhd.Open(vmFile{f}, fi.Size)
		if err != nil {
			return err
		}
		if d.Size() < 60<<30 {
			return fmt.Errorf("VHD is %d bytes after growing to 60 GiB", d.Size())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s.State = VMRunning
	if vm, err = e.UpdateVM(ctx, s); err != nil || vm.Status != VMRunning {
		t.Fatalf("start: %v %+v", err, vm)
	}
	runningOn(t, e, "WEB01", y21)

	// Running: memory needs allow_restart.
	s.MemoryMB = 3072
	if _, err := e.UpdateVM(ctx, s); !isAttr(err, "memory_mb") {
		t.Fatalf("memory change of a running VM: %v", err)
	}
	s.AllowRestart = true
	if vm, err = e.UpdateVM(ctx, s); err != nil || vm.MemoryMB != 3072 || vm.Status != VMRunning {
		t.Fatalf("restart: %v %+v", err, vm)
	}
	// Storage does not move.
	s2 := s
	s2.VHD.Type = VHDFixed
	if _, err := e.UpdateVM(ctx, s2); !isAttr(err, "vhd.type") {
		t.Fatalf("type change: %v", err)
	}
	s2 = s
	s2.VHD.SizeGiB = 10
	if _, err := e.UpdateVM(ctx, s2); !isAttr(err, "vhd.size_gib") {
		t.Fatalf("shrink: %v", err)
	}
	s2 = s
	s2.Volume = "6d0c7a3e-0000-0000-0000-000000000000"
	if _, err := e.UpdateVM(ctx, s2); !isAttr(err, "volume_id") {
		t.Fatalf("new volume: %v", err)
	}

	if err := e.DeleteVM(ctx, "HVCLUSTER", "WEB01"); err != nil {
		t.Fatal(err)
	}
	runningOn(t, e, "WEB01", "")
	chains := ownerChain(t, e)
	if n := len(chains["WEB01"]); n != 5 {
		t.Errorf("WEB01 had %d owner changes, want 5 (create, 3 migrations, delete)", n)
	}
	err = e.WithVolume(ctx, vol.ID, y21, func(fv *kayofs.Volume) error {
		ents, err := fv.ReadDir("")
		if err != nil || len(ents) != 0 {
			return fmt.Errorf("volume root after delete: %v %v", ents, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if kvs, _, _ := e.st.List(ctx, vmNodesPrefix); len(kvs) != 0 {
		t.Errorf("capacity records left: %d", len(kvs))
	}
	volumeClean(t, vol)
}

func isAttr(err error, attr string) bool {
	var ie *InputError
	return errors.As(err, &ie) && ie.Attribute == attr
}

func TestVMPlacementReservesAtomically(t *testing.T) {
	ctx := context.Background()
	e, vol := vmEnv(t)
	// Each node has 32768 MB - 2048 reserve = 30720 MB for VMs. Fill Y-21
	// to 8192 free, then race two 8192 MB VMs pinned onto it.
	big := vmSpec(vol, "BIG", 22528)
	big.OwnerNode, big.State = y21, VMOff
	if _, err := e.CreateVM(ctx, big); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := vmSpec(vol, fmt.Sprintf("RACE%d", i), 8192)
			s.OwnerNode, s.State = y21, VMOff
			_, errs[i] = e.CreateVM(ctx, s)
		}()
	}
	wg.Wait()
	ok, lost := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case isAttr(err, "owner_node") && strings.Contains(err.Error(), "not enough memory"):
			lost++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 || lost != 1 {
		t.Fatalf("two VMs raced for the last 8192 MB: %d landed, %d refused (%v)", ok, lost, errs)
	}
	var rec nodeVMs
	if _, err := getJSON(ctx, e.st, vmNodeKey("HVCLUSTER", y21), &rec); err != nil {
		t.Fatal(err)
	}
	var used int64
	for _, x := range rec.VMs {
		used += x.MemoryMB
	}
	if used != 30720 {
		t.Errorf("Y-21 reserves %d MB, want exactly 30720", used)
	}
}

func TestPlanVM(t *testing.T) {
	ctx := context.Background()
	e, vol := vmEnv(t, seedSpec(y21, 21), seedSpec(y22, 22), seedSpec(y23, 23))
	s := vmSpec(vol, "WEB01", 2048)
	s.OwnerNode = y21
	s.AntiAffinityClass = "web"
	if _, err := e.CreateVM(ctx, s); err != nil {
		t.Fatal(err)
	}
	// Unchanged: no move.
	p, err := e.PlanVM(ctx, s)
	if err != nil || p.Changed || p.Move || !p.Pinned || p.Node != y21 {
		t.Fatalf("unchanged: %v %+v", err, p)
	}
	// New pin: live migration, summary names the VM.
	s2 := s
	s2.OwnerNode = y22
	p, err = e.PlanVM(ctx, s2)
	if err != nil || !p.Move || p.Summary != "WEB01 will be live-migrated from Y-21-2k8x64 to Y-22-2k8x64" {
		t.Fatalf("move: %v %+v", err, p)
	}
	// Errors naming the attribute.
	cases := []struct {
		name string
		mod  func(*VMSpec)
		attr string
		msg  string
	}{
		{"not a possible owner", func(x *VMSpec) { x.OwnerNode = y23; x.PossibleOwners = []string{y21, y22} }, "owner_node", "not in possible_owners"},
		{"too little memory", func(x *VMSpec) { x.OwnerNode = y22; x.MemoryMB = 40000; x.AllowRestart = true }, "owner_node", "not enough memory"},
		{"unknown node", func(x *VMSpec) { x.OwnerNode = "Y-99" }, "owner_node", "not a node of the cluster"},
		{"possible owner not a node", func(x *VMSpec) { x.PossibleOwners = []string{y21, "Y-99"} }, "possible_owners",
			`"Y-99" is not a node of cluster "HVCLUSTER"; allowed: the cluster's nodes`},
		{"preferred owner not a node", func(x *VMSpec) { x.PreferredOwners = []string{"y-21-2k8x64"} }, "preferred_owners",
			`"y-21-2k8x64" is not a node of cluster "HVCLUSTER"`},
	}
	for _, tc := range cases {
		x := s
		tc.mod(&x)
		if _, err := e.PlanVM(ctx, x); !isAttr(err, tc.attr) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %s error with %q", tc.name, err, tc.attr, tc.msg)
		}
	}
	// Required anti-affinity clash.
	db := vmSpec(vol, "WEB02", 1024)
	db.OwnerNode, db.AntiAffinityClass, db.AntiAffinityMode = y21, "web", "required"
	if _, err := e.PlanVM(ctx, db); !isAttr(err, "owner_node") || !strings.Contains(err.Error(), "anti-affinity") {
		t.Errorf("anti-affinity: %v", err)
	}
	db.OwnerNode = ""
	if p, err := e.PlanVM(ctx, db); err != nil || p.Node == y21 {
		t.Errorf("unpinned anti-affinity: %v %+v", err, p)
	}
	// A node down: the pin newly set to it is an error; the VM pinned to it
	// (unchanged) stays with a warning.
	if _, err := e.MarkHostDown(ctx, y22, DownByLab); err != nil {
		t.Fatal(err)
	}
	if _, err := e.PlanVM(ctx, s2); !isAttr(err, "owner_node") || !strings.Contains(err.Error(), "down") {
		t.Errorf("pin to a down node: %v", err)
	}
	s3 := vmSpec(vol, "APP01", 1024)
	s3.OwnerNode = y23
	if _, err := e.CreateVM(ctx, s3); err != nil {
		t.Fatal(err)
	}
	if _, err := e.MarkHostDown(ctx, y23, DownByLab); err != nil {
		t.Fatal(err)
	}
	// Quorum lost (2 of 3 down).
	if _, err := e.PlanVM(ctx, s2); !errors.Is(err, ErrQuorumLost) && !isAttr(err, "owner_node") {
		t.Errorf("quorum lost: %v", err)
	}
	x := s
	x.MemoryMB = 1024
	x.AllowRestart = true
	if _, err := e.PlanVM(ctx, x); !errors.Is(err, ErrQuorumLost) {
		t.Errorf("change without quorum: %v", err)
	}
	if _, err := e.MarkHostUp(ctx, y22); err != nil {
		t.Fatal(err)
	}
	// APP01's node Y-23 is down: quorum back, it failed over; its
	// unchanged pin to the down node keeps it away with a warning.
	app, _ := e.GetVM(ctx, "HVCLUSTER", "APP01")
	if app.Node == y23 || app.Status != VMRunning {
		t.Fatalf("APP01 did not fail over: %+v", app)
	}
	p, err = e.PlanVM(ctx, s3)
	if err != nil || !p.Stay || p.Move || p.Node != app.Node || !strings.Contains(p.StayReason, "down") {
		t.Fatalf("pinned VM away from its down pin: %v %+v", err, p)
	}
	if _, err := e.MarkHostUp(ctx, y23); err != nil {
		t.Fatal(err)
	}
	p, err = e.PlanVM(ctx, s3)
	if err != nil || !p.Move || p.To != y23 || p.Changed {
		t.Fatalf("pin back up: %v %+v", err, p)
	}
	ownerChain(t, e)
}

func TestVMNameAndPaths(t *testing.T) {
	for _, bad := range []string{"", "..", "a..b", "../x", "a/b", `a\b`, "CON", "nul.txt", "-x", "x.", strings.Repeat("a", 65), "a b"} {
		if _, err := PathsFor("O", bad); !isAttr(err, "name") {
			t.Errorf("name %q accepted: %v", bad, err)
		}
	}
	p, err := PathsFor("O", "WEB01")
	if err != nil || p.VHD != `O:\WEB01\WEB01.vhd` || p.Config != `O:\WEB01\WEB01.xml` || p.VolVHD != "WEB01/WEB01.vhd" {
		t.Fatalf("%+v %v", p, err)
	}
	if _, err := PathsFor("C", "WEB01"); err == nil {
		t.Error("drive letter C accepted")
	}
}

// TestVHDOnVolumeQemuImg copies VHDs the engine wrote out of the volume
// and has qemu-img read them.
func TestVHDOnVolumeQemuImg(t *testing.T) {
	qemu, err := exec.LookPath("qemu-img")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("qemu-img not found: install Debian's qemu-utils")
		}
		t.Skip("qemu-img not found: install Debian's qemu-utils to run this test")
	}
	ctx := context.Background()
	e, vol := vmEnv(t)
	dir := t.TempDir()
	for _, typ := range []string{VHDDynamic, VHDFixed} {
		s := vmSpec(vol, "DISK-"+typ, 1024)
		s.VHD = VHDSpec{SizeGiB: 2, Type: typ}
		s.State = VMOff
		vm, err := e.CreateVM(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, vm.Name+".vhd")
		err = e.WithVolume(ctx, vol.ID, vm.Node, func(fv *kayofs.Volume) error {
			f, err := fv.Open(vm.Name + "/" + vm.Name + ".vhd")
			if err != nil {
				return err
			}
			fi, _ := f.Stat()
			o, err := os.Create(out)
			if err != nil {
				return err
			}
			defer o.Close()
			// A fresh disk is its structures at both ends and unwritten
			// extents (zeros) between: copy the ends, keep the middle a hole.
			buf := make([]byte, 1<<20)
			for _, off := range []int64{0, max(fi.Size-int64(len(buf)), 0)} {
				n := min(int64(len(buf)), fi.Size-off)
				if _, err := f.ReadAt(buf[:n], off); err != nil {
					return err
				}
				if isZero(buf[:n]) {
					continue // keep the copy sparse
				}
				if _, err := o.WriteAt(buf[:n], off); err != nil {
					return err
				}
			}
			return o.Truncate(fi.Size)
		})
		if err != nil {
			t.Fatal(err)
		}
		info, err := exec.Command(qemu, "info", "-f", "vpc", "--output=json", out).CombinedOutput()
		if err != nil || !strings.Contains(string(info), `"virtual-size": 2147`) {
			t.Fatalf("qemu-img info %s: %v\n%s", typ, err, info)
		}
		chk, err := exec.Command(qemu, "check", "-f", "vpc", out).CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 63 && strings.Contains(string(chk), "does not support checks")) {
			t.Fatalf("qemu-img check %s: %v\n%s", typ, err, chk)
		}
	}
	volumeClean(t, vol)
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

func TestVMFailover(t *testing.T) {
	ctx := context.Background()
	e, vol := vmEnv(t, seedSpec(y21, 21), seedSpec(y22, 22), seedSpec(y23, 23))
	s := vmSpec(vol, "WEB01", 2048)
	s.OwnerNode, s.PreferredOwners = y21, []string{y21, y23}
	if _, err := e.CreateVM(ctx, s); err != nil {
		t.Fatal(err)
	}
	u := vmSpec(vol, "FREE01", 1024)
	u.PossibleOwners = []string{y21}
	if _, err := e.CreateVM(ctx, u); err != nil {
		t.Fatal(err)
	}
	if _, err := e.MarkHostDown(ctx, y21, DownByLab); err != nil {
		t.Fatal(err)
	}
	vm, _ := e.GetVM(ctx, "HVCLUSTER", "WEB01")
	if vm.Node != y23 || vm.Status != VMRunning || vm.OwnerNode != y21 || vm.Token != 2 {
		t.Fatalf("after failover: %+v", vm)
	}
	runningOn(t, e, "WEB01", y23)
	free, _ := e.GetVM(ctx, "HVCLUSTER", "FREE01")
	if free.Status != StatusFailed || !strings.Contains(free.StatusReason, "no node can take") {
		t.Errorf("VM with nowhere to go: %s %q", free.Status, free.StatusReason)
	}
	p, err := e.PlanVM(ctx, s)
	if err != nil || !p.Stay || p.Move {
		t.Fatalf("plan while the pin is down: %v %+v", err, p)
	}
	if _, err := e.MarkHostUp(ctx, y21); err != nil {
		t.Fatal(err)
	}
	if p, err = e.PlanVM(ctx, s); err != nil || !p.Move || p.To != y21 {
		t.Fatalf("plan with the pin back: %v %+v", err, p)
	}
	// Quorum: two of three down stops everything; one back restarts.
	if _, err := e.MarkHostDown(ctx, y22, DownByLab); err != nil {
		t.Fatal(err)
	}
	if _, err := e.MarkHostDown(ctx, y21, DownByLab); err != nil {
		t.Fatal(err)
	}
	vm, _ = e.GetVM(ctx, "HVCLUSTER", "WEB01")
	if vm.Status != StatusFailed || vm.StatusReason != quorumLostReason {
		t.Fatalf("quorum lost: %+v", vm)
	}
	runningOn(t, e, "WEB01", "")
	if _, err := e.MarkHostUp(ctx, y22); err != nil {
		t.Fatal(err)
	}
	vm, _ = e.GetVM(ctx, "HVCLUSTER", "WEB01")
	if vm.Status != VMRunning {
		t.Fatalf("quorum back: %+v", vm)
	}
	runningOn(t, e, "WEB01", vm.Node)
	ownerChain(t, e)
}

// A VM's directory goes with it in one change; a file the engine did not
// put there stops the deletion instead of being deleted.
func TestDeleteVMFilesInDirectory(t *testing.T) {
	ctx := context.Background()
	e, vol := vmEnv(t)
	s := vmSpec(vol, "WEB01", 1024)
	s.State = VMOff
	vm, err := e.CreateVM(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	onVol := func(fn func(fv *kayofs.Volume) error) {
		t.Helper()
		if err := e.WithVolume(ctx, vol.ID, vm.Node, fn); err != nil {
			t.Fatal(err)
		}
	}
	onVol(func(fv *kayofs.Volume) error {
		f, err := fv.Create("WEB01/notes.txt")
		if err != nil {
			return err
		}
		_, err = f.WriteAt([]byte("keep me"), 0)
		return err
	})
	if err := e.DeleteVM(ctx, vol.Cluster, "WEB01"); !errors.Is(err, kayofs.ErrNotEmpty) || !strings.Contains(err.Error(), `O:\WEB01`) {
		t.Fatalf("delete with a foreign file: %v, want ErrNotEmpty naming O:\\WEB01", err)
	}
	onVol(func(fv *kayofs.Volume) error {
		ents, err := fv.ReadDir("WEB01")
		if err != nil || len(ents) != 1 || path.Base(ents[0].Name) != "notes.txt" {
			t.Errorf("left: %v %v, want notes.txt only", ents, err)
		}
		return fv.Remove("WEB01/notes.txt")
	})
	if err := e.DeleteVM(ctx, vol.Cluster, "WEB01"); err != nil {
		t.Fatal(err)
	}
	onVol(func(fv *kayofs.Volume) error {
		if _, err := fv.ReadDir("WEB01"); !errors.Is(err, kayofs.ErrNotExist) {
			t.Errorf("directory after delete: %v", err)
		}
		return nil
	})
	if _, err := e.GetVM(ctx, vol.Cluster, "WEB01"); !errors.Is(err, ErrNotFound) {
		t.Errorf("VM after delete: %v", err)
	}
}
