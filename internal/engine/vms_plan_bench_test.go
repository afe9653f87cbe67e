package engine

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// planEnv is the VM benchmark's cluster (hosts hosts, volume O:) with n
// running VMs, counted by its Metrics from here on.
func planEnv(tb testing.TB, n, hosts int) (*Engine, Volume, func(i int) VMSpec) {
	tb.Helper()
	ctx := context.Background()
	e, err := Open(Config{DataDir: tb.TempDir()})
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

// A plan of the benchmark's 200 VMs over 16 hosts opens no device and
// makes no hypervisor call (issue 18: the control plane only reads the
// cluster database).
func TestPlanOf200VMsOpensNothing(t *testing.T) {
	const n, hosts = 200, 16
	e, vol, spec := planEnv(t, n, hosts)
	if err := planReads(context.Background(), e, vol, n, spec); err != nil {
		t.Fatal(err)
	}
	if d, c := e.metrics.DevicesOpened(), e.metrics.HypervisorCalls(); d != 0 || c != 0 {
		t.Fatalf("a plan of %d VMs opened %d devices and made %d hypervisor calls, want 0 and 0", n, d, c)
	}
}

// BenchmarkVMPlanRefresh times the reads of a plan of 200 VMs over 16
// hosts (planReads) on the embedded bbolt database, and reports the
// devices opened and hypervisor calls per plan.
//
//	go test -run '^$' -bench VMPlanRefresh -benchtime=5x ./internal/engine/
func BenchmarkVMPlanRefresh(b *testing.B) {
	const n, hosts = 200, 16
	ctx := context.Background()
	e, vol, spec := planEnv(b, n, hosts)
	var total time.Duration
	for b.Loop() {
		start := time.Now()
		if err := planReads(ctx, e, vol, n, spec); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "plan-ms")
	b.ReportMetric(float64(e.metrics.DevicesOpened())/float64(b.N), "devices/plan")
	b.ReportMetric(float64(e.metrics.HypervisorCalls())/float64(b.N), "hv-calls/plan")
}
