package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// planEnv is the VM benchmark's cluster (hosts hosts, volume O:) with n
// running VMs, counted by its Metrics from here on.
func planEnv(tb testing.TB, n, hosts int) (*Engine, Volume, func(i int) VMSpec) {
	tb.Helper()
	ctx := context.Background()
	e, err := openT(Config{DataDir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	var names []string
	for i := range hosts {
		s := seedSpec(benchNode(i), 100+i)
		if _, err := e.CreateHost(ctx, s); err != nil {
			tb.Fatal(err)
		}
		names = append(names, s.Name)
	}
	if _, err := e.CreateCluster(ctx, seedCluster("BENCHCLUSTER", names...)); err != nil {
		tb.Fatal(err)
	}
	vol, err := e.CreateVolume(ctx, VolumeSpec{Cluster: "BENCHCLUSTER", LUN: "lun0", SizeGiB: 500, Label: "VMSTORE",
		DriveLetter: "O", BlockSize: 4096, NodeSlots: 16})
	if err != nil {
		tb.Fatal(err)
	}
	spec := func(i int) VMSpec {
		s := vmSpec(vol, fmt.Sprintf("VM%03d", i), 1024)
		s.VHD.SizeGiB = 10
		s.OwnerNode = benchNode(i % hosts)
		return s
	}
	if err := runN(n, 10, func(i int) error { _, err := e.CreateVM(ctx, spec(i)); return err }); err != nil {
		tb.Fatal(err)
	}
	e.ReleaseMounts()
	e.metrics = &Metrics{}
	return e, vol, spec
}

// planReads is what a `terraform plan` of the VM benchmark's
// configuration asks of the engine, with Terraform's parallelism of 10:
// the hosts, the cluster and the volume read, then per VM its refresh and
// the plan's judgement.
func planReads(ctx context.Context, e *Engine, vol Volume, n int, spec func(int) VMSpec) error {
	if _, err := e.ListHosts(ctx); err != nil {
		return err
	}
	if _, err := e.GetCluster(ctx, vol.Cluster); err != nil {
		return err
	}
	v, err := e.GetVolume(ctx, vol.ID)
	if err != nil {
		return err
	}
	if _, err := e.VolumeState(ctx, v); err != nil {
		return err
	}
	if _, _, err := e.VolumeUnmountedNodes(ctx, vol.ID); err != nil {
		return err
	}
	return runN(n, 10, func(i int) error {
		s := spec(i)
		vm, err := e.RefreshVM(ctx, s.Cluster, s.Name)
		if err != nil {
			return err
		}
		if vm.Status != VMRunning {
			return fmt.Errorf("VM %s reads %s (%s)", s.Name, vm.Status, vm.StatusReason)
		}
		_, err = e.PlanVM(ctx, s)
		return err
	})
}

// What a plan of the benchmark's 200 VMs over 16 hosts opens (issue 18:
// the control plane only reads the cluster database). The provider's
// configure first reports the lab's LUNs as the lab's node agent
// (ReportLabVolumes: embedded database, no agents; provider.go), which
// opens the LUN of each volume once, O: here; the refresh and plan of the
// VMs then open no device and make no hypervisor call. Besides the
// counters (metrics.go), which see only the opens that count themselves,
// the LUN images are out of reach while the VMs are read (withoutLUNs):
// an open the counters miss fails the plan.
func TestPlanOf200VMsOpensNothing(t *testing.T) {
	const n, hosts = 200, 16
	ctx := context.Background()
	e, vol, spec := planEnv(t, n, hosts)
	if err := e.ReportLabVolumes(ctx); err != nil {
		t.Fatal(err)
	}
	if d, c := e.metrics.DevicesOpened(), e.metrics.HypervisorCalls(); d != 1 || c != 0 {
		t.Fatalf("the lab's report of volume O: opened %d devices and made %d hypervisor calls, want 1 and 0", d, c)
	}
	e.metrics = &Metrics{}
	withoutLUNs(t, e, func() {
		if err := planReads(ctx, e, vol, n, spec); err != nil {
			t.Fatalf("a plan with the LUN images out of reach: %v", err)
		}
	})
	if d, c := e.metrics.DevicesOpened(), e.metrics.HypervisorCalls(); d != 0 || c != 0 {
		t.Fatalf("the refresh and plan of %d VMs opened %d devices and made %d hypervisor calls, want 0 and 0", n, d, c)
	}
}

// The counters of the test above count a device open and a hypervisor
// call: a counter that no longer counts would pass that test.
func TestPlanCountersCount(t *testing.T) {
	e, vol, spec := planEnv(t, 1, 2)
	ctx := context.Background()
	hv, err := e.Hypervisor(ctx, vol.Cluster)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hv.Status(ctx, spec(0).OwnerNode, spec(0).Name); err != nil {
		t.Fatal(err)
	}
	v, err := e.GetVolume(ctx, vol.ID)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := e.openVolumeDevice(v)
	if err != nil {
		t.Fatal(err)
	}
	_ = fd.Close()
	if d, c := e.metrics.DevicesOpened(), e.metrics.HypervisorCalls(); d != 1 || c != 1 {
		t.Fatalf("one device open and one hypervisor call counted as %d and %d", d, c)
	}
}

// withoutLUNs runs fn with the embedded SAN's directory moved away, so
// that any open of a LUN image fails.
func withoutLUNs(tb testing.TB, e *Engine, fn func()) {
	tb.Helper()
	san := filepath.Join(e.DataDir(), SANDir)
	away := san + ".away"
	if err := os.Rename(san, away); err != nil {
		tb.Fatal(err)
	}
	defer func() {
		if err := os.Rename(away, san); err != nil {
			tb.Fatal(err)
		}
	}()
	fn()
}

// BenchmarkVMPlanRefresh times the reads of a plan of 200 VMs over 16
// hosts (planReads) on the embedded bbolt database, and reports the
// devices opened and hypervisor calls per plan: by the VMs' refresh and
// plan (vm-reads, none: the LUN images are out of reach meanwhile), and
// by the whole plan, with the lab's report of configure (one device per
// volume: TestPlanOf200VMsOpensNothing).
//
//	go test -run '^$' -bench VMPlanRefresh -benchtime=5x ./internal/engine/
func BenchmarkVMPlanRefresh(b *testing.B) {
	const n, hosts = 200, 16
	ctx := context.Background()
	e, vol, spec := planEnv(b, n, hosts)
	var total time.Duration
	var labDevices, vmDevices, vmCalls int64
	for b.Loop() {
		start := time.Now()
		if err := e.ReportLabVolumes(ctx); err != nil {
			b.Fatal(err)
		}
		labDevices += e.metrics.DevicesOpened()
		e.metrics = &Metrics{}
		withoutLUNs(b, e, func() {
			if err := planReads(ctx, e, vol, n, spec); err != nil {
				b.Fatalf("a plan with the LUN images out of reach: %v", err)
			}
		})
		total += time.Since(start)
		vmDevices += e.metrics.DevicesOpened()
		vmCalls += e.metrics.HypervisorCalls()
		e.metrics = &Metrics{}
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "plan-ms")
	b.ReportMetric(float64(labDevices+vmDevices)/float64(b.N), "devices/plan")
	b.ReportMetric(float64(vmDevices)/float64(b.N), "devices/vm-reads")
	b.ReportMetric(float64(vmCalls)/float64(b.N), "hv-calls/plan")
	if vmDevices != 0 || vmCalls != 0 {
		b.Fatalf("the VM reads of %d plans opened %d devices and made %d hypervisor calls, want none", b.N, vmDevices, vmCalls)
	}
}
