package workexec

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor"
)

// TestSimulatorVMByAgentsOnly: a control-plane engine that runs no
// executor of its own (no Config.LocalExecutor) starts, quick-migrates,
// stops and deletes a simulator VM whose nodes' agents run in another
// engine: every hypervisor call and the state file's save, restore and
// removal are the agents' work, and the control plane makes no Kayo FS
// mount for them.
func TestSimulatorVMByAgentsOnly(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	nodes := []string{"N-1", "N-2"}
	ag, err := engine.Open(engine.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ag.Close() })
	actx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	t.Cleanup(func() { stop(); wg.Wait() })
	var mu sync.Mutex
	ran := map[string][]string{} // node → ops its agent ran
	for _, n := range nodes {
		x := New(ag, Config{Node: n, Agent: "agent-" + n, Logf: t.Logf, Hook: func(op, phase string) {
			if phase == "before" {
				mu.Lock()
				ran[n] = append(ran[n], op)
				mu.Unlock()
			}
		}})
		wg.Go(func() { _ = x.Run(actx) })
	}
	rt := engine.NewRuntime()
	ctl, err := engine.Open(engine.Config{DataDir: dir, Runtime: rt})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ctl.Close() })
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range nodes {
		for ctl.WorkReady(ctx, n) != nil || !agentUp(ctx, ctl, n) {
			if time.Now().After(deadline) {
				t.Fatalf("the agent of %s did not report", n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for i, n := range nodes {
		a := fmt.Sprintf("192.0.2.%d", 21+i)
		if _, err := ctl.CreateHost(ctx, engine.HostSpec{Name: n, Address: a, OSEdition: "enterprise",
			ProcessorVendor: "intel", ProcessorModel: "Xeon E5440", ProcessorCores: 8, MemoryMB: 32768,
			Features: []string{"Hyper-V", "Failover-Clustering"},
			Adapters: []engine.Adapter{{Name: "Public", Network: "192.0.2.0/24", Address: a},
				{Name: "Heartbeat", Network: "10.10.10.0/24", Address: fmt.Sprintf("10.10.10.%d", 21+i)}}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ctl.CreateCluster(ctx, engine.ClusterSpec{Name: "C", Nodes: nodes, StaticAddress: "192.0.2.50/24",
		Hypervisor: engine.HypervisorSimulator, HeartbeatTimeoutSeconds: 10}); err != nil {
		t.Fatal(err)
	}
	vol, err := ctl.CreateVolume(ctx, engine.VolumeSpec{Cluster: "C", LUN: "lun0", SizeGiB: 2, DriveLetter: "O", BlockSize: 4096, NodeSlots: 4})
	if err != nil {
		t.Fatal(err)
	}
	mounts := rt.MountsMade()
	mu.Lock()
	clear(ran)
	mu.Unlock()

	s := engine.VMSpec{Cluster: "C", Volume: vol.ID, Name: "WEB01", MemoryMB: 1024, ProcessorCount: 2,
		VHD: engine.VHDSpec{SizeGiB: 4, Type: engine.VHDDynamic}, OwnerNode: "N-1",
		AntiAffinityMode: "preferred", Migration: engine.MigrationQuick, State: engine.VMRunning,
		Failback: engine.FailbackSpec{Mode: engine.FailbackPrevent}, MaxFailures: 1, FailurePeriodHours: 6}
	if _, err := ctl.CreateVM(ctx, s); err != nil {
		t.Fatal(err)
	}
	where := func(want ...string) {
		t.Helper()
		sts, err := ctl.Simulator("C").Where(ctx, "WEB01")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, st := range sts {
			got = append(got, st.Node+" "+string(st.State))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("the simulator has WEB01 as %v, want %v", got, want)
		}
	}
	where("N-1 running")
	s.OwnerNode = "N-2"
	vm, err := ctl.UpdateVM(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if vm.Node != "N-2" || vm.LastMigration == nil || vm.LastMigration.Type != engine.MigrationQuick {
		t.Fatalf("after the move: node %s, last migration %+v", vm.Node, vm.LastMigration)
	}
	where("N-2 running")
	st, err := ctl.Simulator("C").Status(ctx, "N-2", "WEB01")
	if err != nil || st.Token != hypervisor.Token(vm.Token) {
		t.Fatalf("status on N-2: %+v, %v (token want %d)", st, err, vm.Token)
	}
	s.State = engine.VMOff
	if _, err := ctl.UpdateVM(ctx, s); err != nil {
		t.Fatal(err)
	}
	where("N-2 off")
	if err := ctl.DeleteVM(ctx, "C", "WEB01"); err != nil {
		t.Fatal(err)
	}
	where()
	if n := rt.MountsMade() - mounts; n != 0 {
		t.Errorf("the control plane made %d Kayo FS mount(s) for the VM's life; want none (its nodes' agents do the work)", n)
	}
	mu.Lock()
	defer mu.Unlock()
	count := func(node, op string) int {
		n := 0
		for _, o := range ran[node] {
			if o == op {
				n++
			}
		}
		return n
	}
	// N-1: the start (riding on the VM's files, vm.files) and the save
	// (its saved copy's record then goes with the migration's last
	// commit); N-2: the restore, the state file's removal, the stop, and
	// the discard riding on the files' removal.
	for _, c := range []struct {
		node, op string
		min      int
	}{{"N-1", "vm.hypervisor", 1}, {"N-2", "vm.hypervisor", 2}, {"N-2", "vm.remove_state", 1}} {
		if got := count(c.node, c.op); got < c.min {
			t.Errorf("the agent of %s ran %d %s request(s), want at least %d (ran %v)", c.node, got, c.op, c.min, ran[c.node])
		}
	}
}

// agentUp reports whether node's agent has recorded its heartbeat
// (nodeWorkAgentKey, internal/engine/keys.go).
func agentUp(ctx context.Context, e *engine.Engine, node string) bool {
	_, err := e.Store().Get(ctx, "node-work-agents/"+node)
	return err == nil
}
