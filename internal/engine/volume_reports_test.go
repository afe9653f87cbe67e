package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// newMeteredDisk is newDisk with its devices and hypervisor calls counted.
func newMeteredDisk(t *testing.T) (*Engine, *Metrics) {
	t.Helper()
	e := newDisk(t)
	e.metrics = &Metrics{}
	return e, e.metrics
}

// Every read a plan makes — the volume, its state, the VM's refresh and
// data source view, the plan-time judgements — works with the LUN image
// gone from this machine: no device is opened and the hypervisor is not
// asked, and nothing is recorded (before, the refresh opened the LUN and
// recorded the VM failed on a machine that does not hold it).
func TestReadsOpenNoDevice(t *testing.T) {
	ctx := context.Background()
	e, m := newMeteredDisk(t)
	vol, err := e.CreateVolume(ctx, VolumeSpec{Cluster: "HVCLUSTER", LUN: "lun0", SizeGiB: 1, DriveLetter: "O", BlockSize: 4096, NodeSlots: 4})
	if err != nil {
		t.Fatal(err)
	}
	s := vmSpec(vol, "WEB01", 1024)
	s.VHD.SizeGiB = 1
	if _, err := e.CreateVM(ctx, s); err != nil {
		t.Fatal(err)
	}
	e.ReleaseMounts()
	if err := os.Rename(vol.Device, vol.Device+".elsewhere"); err != nil {
		t.Fatal(err)
	}
	opened, calls := m.DevicesOpened(), m.HypervisorCalls()
	if opened == 0 || calls == 0 {
		t.Fatalf("creating counted %d device opens and %d hypervisor calls: the counters do not count", opened, calls)
	}
	v, err := e.GetVolume(ctx, vol.ID)
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.VolumeState(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	if st.Lost != nil || st.UsedBytes == 0 || st.FreeBytes == 0 || st.By == "" {
		t.Fatalf("volume state %+v, want the reported space", st)
	}
	if _, err := e.ListVolumes(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if err := e.CheckVolumePlan(ctx, vol.ID, vol.VolumeSpec); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.VolumeUnmountedNodes(ctx, vol.ID); err != nil {
		t.Fatal(err)
	}
	vm, err := e.RefreshVM(ctx, "HVCLUSTER", "WEB01")
	if err != nil || vm.Status != VMRunning {
		t.Fatalf("refresh: %s (%s), %v; want running", vm.Status, vm.StatusReason, err)
	}
	if vm, err := e.ObservedVM(ctx, "HVCLUSTER", "WEB01"); err != nil || e.ReportedVM(ctx, vm).Status != VMRunning {
		t.Fatalf("data source view: %v %v", vm.Status, err)
	}
	if _, err := e.PlanVM(ctx, s); err != nil {
		t.Fatal(err)
	}
	if d, c := m.DevicesOpened()-opened, m.HypervisorCalls()-calls; d != 0 || c != 0 {
		t.Fatalf("the reads opened %d devices and made %d hypervisor calls, want 0 and 0", d, c)
	}
}

// The reports follow every change made through a node's mount: the VM's
// files, their removal, a grown volume; and the mounts of nodes that join
// or leave.
func TestVolumeReportsFollowChanges(t *testing.T) {
	ctx := context.Background()
	e := newDisk(t)
	clock := fixedNow
	// Each step past spaceEvery: every change recomputes the space.
	e.now = func() time.Time { clock = clock.Add(spaceEvery + time.Millisecond); return clock }
	vol, err := e.CreateVolume(ctx, VolumeSpec{Cluster: "HVCLUSTER", LUN: "lun0", SizeGiB: 2, DriveLetter: "O", BlockSize: 4096, NodeSlots: 4})
	if err != nil {
		t.Fatal(err)
	}
	state := func() VolumeState {
		t.Helper()
		v, err := e.GetVolume(ctx, vol.ID)
		if err != nil {
			t.Fatal(err)
		}
		st, err := e.VolumeState(ctx, v)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	fresh := state()
	if len(fresh.Reports) != 2 || fresh.UsedBytes == 0 || fresh.TotalBytes != 2<<30 || len(fresh.Stale) != 0 {
		t.Fatalf("after creation: %+v, want a report per node", fresh)
	}
	for _, r := range fresh.Reports {
		if r.FSUUID != vol.ID || r.SlotState != "detached" || r.Slot != vol.Mounts[r.Node] || r.LUNBytes != 2<<30 {
			t.Fatalf("report %+v", r)
		}
	}
	s := vmSpec(vol, "WEB01", 1024)
	s.VHD = VHDSpec{SizeGiB: 1, Type: VHDFixed}
	vm, err := e.CreateVM(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	withVM := state()
	if withVM.UsedBytes < fresh.UsedBytes+1<<30-(64<<20) || withVM.By != vm.Node {
		t.Fatalf("after a 1 GiB fixed VHD on %s: used %d by %s (before %d)", vm.Node, withVM.UsedBytes, withVM.By, fresh.UsedBytes)
	}
	if err := e.DeleteVM(ctx, "HVCLUSTER", "WEB01"); err != nil {
		t.Fatal(err)
	}
	if gone := state(); gone.UsedBytes >= withVM.UsedBytes-(1<<30-(64<<20)) {
		t.Fatalf("after deleting the VM: used %d (with it %d)", gone.UsedBytes, withVM.UsedBytes)
	}
	grown := vol.VolumeSpec
	grown.SizeGiB = 3
	if _, err := e.UpdateVolume(ctx, vol.ID, grown); err != nil {
		t.Fatal(err)
	}
	if st := state(); st.TotalBytes != 3<<30 {
		t.Fatalf("after growing to 3 GiB: total %d", st.TotalBytes)
	}
	e.ReleaseMounts()
	mustHosts(t, e, seedSpec("Y-23-2k8x64", 23))
	if _, err := e.UpdateCluster(ctx, seedCluster("HVCLUSTER", "Y-22-2k8x64", "Y-23-2k8x64")); err != nil {
		t.Fatal(err)
	}
	st := state()
	var nodes []string
	for _, r := range st.Reports {
		nodes = append(nodes, r.Node)
	}
	if strings.Join(nodes, ",") != "Y-22-2k8x64,Y-23-2k8x64" {
		t.Fatalf("reports after the membership change are of %v", nodes)
	}
	// A recovery recorded on the volume leaves a marker (agent_fence.go).
	if err := e.recordLeaseEvent(ctx, vol, kayofs.LeaseEvent{Kind: kayofs.LeaseRecovered, Node: "Y-22-2k8x64", Peer: "Y-23-2k8x64", Slot: 1, MountGen: 7}); err != nil {
		t.Fatal(err)
	}
	markers := func() []store.KV {
		kvs, _, err := e.st.List(ctx, volumeRecoveriesPrefix+vol.ID+"/")
		if err != nil {
			t.Fatal(err)
		}
		return kvs
	}
	if len(markers()) != 1 {
		t.Fatalf("recovery markers before the delete: %v", markers())
	}
	if err := e.DeleteVolume(ctx, vol.ID, false); err != nil {
		t.Fatal(err)
	}
	if reps, err := e.VolumeReports(ctx, vol.ID); err != nil || len(reps) != 0 {
		t.Fatalf("reports outlive the volume: %v %v", reps, err)
	}
	if m := markers(); len(m) != 0 {
		t.Fatalf("recovery markers outlive the volume: %v", m)
	}
}

// Lost-LUN detection comes from what nodes report: an agent that finds
// the LUN zeroed makes it lost (naming the node); an agent that cannot
// find the LUN at all reports its own node unable to reach it, which is
// not the LUN lost.
func TestAgentReportsLUN(t *testing.T) {
	ctx := context.Background()
	e := newDisk(t)
	clock := fixedNow
	e.now = func() time.Time { clock = clock.Add(time.Millisecond); return clock }
	vol, err := e.CreateVolume(ctx, VolumeSpec{Cluster: "HVCLUSTER", LUN: "lun0", SizeGiB: 1, DriveLetter: "O", BlockSize: 4096, NodeSlots: 4})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateVM(ctx, vmSpec(vol, "WEB01", 1024)); err != nil {
		t.Fatal(err)
	}
	e.ReleaseMounts()
	if err := os.Rename(vol.Device, vol.Device+".away"); err != nil {
		t.Fatal(err)
	}
	if err := e.ReportNodeVolumes(ctx, "Y-21-2k8x64", "Y-21-2k8x64/test"); err != nil { // as its agent's tick does
		t.Fatal(err)
	}
	st, err := e.VolumeState(ctx, vol)
	if err != nil {
		t.Fatal(err)
	}
	if st.Lost != nil || !strings.Contains(st.Unseen["Y-21-2k8x64"], "does not exist") {
		t.Fatalf("an agent that cannot find the LUN: lost %v, unseen %v", st.Lost, st.Unseen)
	}
	if vm, err := e.RefreshVM(ctx, "HVCLUSTER", "WEB01"); err != nil || vm.Status != VMRunning {
		t.Fatalf("a LUN one node cannot reach fails the VM: %s %v", vm.Status, err)
	}
	if err := os.Rename(vol.Device+".away", vol.Device); err != nil {
		t.Fatal(err)
	}
	zeroHead(t, vol.Device, 64<<10)
	// The next report is due after VolumeReportInterval.
	clock = clock.Add(VolumeReportInterval)
	if err := e.ReportNodeVolumes(ctx, "Y-21-2k8x64", "Y-21-2k8x64/test"); err != nil { // as its agent's tick does
		t.Fatal(err)
	}
	reason, err := e.VolumeLost(ctx, vol.ID)
	if err != nil || !strings.Contains(reason, "as node Y-21-2k8x64 reported") || !strings.Contains(reason, "no longer holds volume "+vol.ID) {
		t.Fatalf("lost after the agent's report: %q, %v", reason, err)
	}
	vm, err := e.RefreshVM(ctx, "HVCLUSTER", "WEB01")
	if err != nil || vm.Status != StatusFailed {
		t.Fatalf("refresh after the LUN was reported zeroed: %s, %v", vm.Status, err)
	}
	var lost *LUNLostError
	if err := e.WithVolume(ctx, vol.ID, "Y-21-2k8x64", func(*kayofs.Volume) error { return nil }); !errors.As(err, &lost) {
		t.Fatalf("a write still checks the LUN itself: %v", err)
	}
}

// Operations finishing together share one space computation
// (spaceGate), at most one per spaceEvery, and the first change after that
// counts every earlier one: its used bytes equal what the allocation
// groups say.
func TestVolumeReportAfterConcurrentChanges(t *testing.T) {
	ctx := context.Background()
	e := newDisk(t)
	var tick, skip atomic.Int64
	e.now = func() time.Time {
		return fixedNow.Add(time.Duration(tick.Add(1))*time.Microsecond + time.Duration(skip.Load()))
	}
	vol, err := e.CreateVolume(ctx, VolumeSpec{Cluster: "HVCLUSTER", LUN: "lun0", SizeGiB: 4, DriveLetter: "O", BlockSize: 4096, NodeSlots: 4})
	if err != nil {
		t.Fatal(err)
	}
	err = runN(12, 6, func(i int) error {
		s := vmSpec(vol, fmt.Sprintf("VM%02d", i), 256)
		s.VHD = VHDSpec{SizeGiB: 1, Type: VHDDynamic}
		_, err := e.CreateVM(ctx, s)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Within spaceEvery the burst's reports may carry the space of its
	// start; the next change after it counts everything.
	skip.Store(int64(spaceEvery))
	last := vmSpec(vol, "VM99", 256)
	last.VHD = VHDSpec{SizeGiB: 1, Type: VHDDynamic}
	if _, err := e.CreateVM(ctx, last); err != nil {
		t.Fatal(err)
	}
	e.ReleaseMounts()
	st, err := e.VolumeState(ctx, vol)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := kayofs.OpenDevice(vol.Device)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	disk, err := kayofs.Usage(fd)
	if err != nil {
		t.Fatal(err)
	}
	if st.UsedBytes != disk.UsedBytes || st.FreeBytes != disk.FreeBytes {
		t.Fatalf("newest report (by %s): used %d free %d; the volume: used %d free %d", st.By, st.UsedBytes, st.FreeBytes, disk.UsedBytes, disk.FreeBytes)
	}
}
