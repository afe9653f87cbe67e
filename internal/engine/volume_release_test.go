package engine

import (
	"context"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

// slotState is node's slot state on v's LUN as kayofs.Slots probes it.
func slotState(t *testing.T, v Volume, node string) string {
	t.Helper()
	fd, err := kayofs.OpenDevice(v.Device)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	slots, err := kayofs.Slots(fd)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range slots {
		if s.Node == node {
			return s.State
		}
	}
	return "none"
}

// heldMount is the agent's pinned cache entry of v as node, once it is
// held (nil after the timeout).
func heldMount(e *Engine, v Volume, node string, within time.Duration) *sharedMount {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if e.rt.mounts.pinned(v.ID, node) {
			e.rt.mounts.mu.Lock()
			sm := e.rt.mounts.m[mountKey{volume: v.ID, device: v.Device, node: node}]
			e.rt.mounts.mu.Unlock()
			if sm != nil {
				return sm
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// A node agent holds its node's mount of each volume for as long as it
// runs: the slot is mounted (not detached) on the LUN, the node's work
// runs on that one mount (it does not go idle and detach), another
// process that needs the node gets it lent, a clean shutdown detaches it,
// a restarted agent mounts it again, and DeleteVolume has it released.
func TestAgentHoldsMounts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e, vol := workEnv(t, dir)
	if got := slotState(t, vol, y21); got != "detached" {
		t.Fatalf("after the creation, %s's slot is %s, want detached", y21, got)
	}
	agent := openWorkEngine(t, dir)
	stop := startWorkAgent(t, agent, y21)
	sm := heldMount(agent, vol, y21, 10*time.Second)
	if sm == nil {
		t.Fatal("the agent does not hold its node's mount")
	}
	if got := slotState(t, vol, y21); got != "mounted" {
		t.Fatalf("while the agent runs, %s's slot is %s, want mounted", y21, got)
	}
	// The node's work (a VM's files) runs on the held mount, which outlives
	// the cache's idle time.
	s := vmSpec(vol, "WEB01", 1024)
	s.OwnerNode = y21
	vm, err := e.CreateVM(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * DefaultMountIdle)
	if again := heldMount(agent, vol, y21, time.Second); again != sm {
		t.Fatalf("the agent's mount went (idle-detached or replaced: %p, was %p)", again, sm)
	}
	// Another process needs the node (vmFilesGood mounts it; so does
	// WithVolume): the agent lends its mount.
	vmFilesGood(t, e, vm)
	if err := e.WithVolume(ctx, vol.ID, y21, func(fv *kayofs.Volume) error {
		_, err := fv.ReadDir("")
		return err
	}); err != nil {
		t.Fatalf("borrowing %s's mount from its agent: %v", y21, err)
	}
	if heldMount(agent, vol, y21, 10*time.Second) == nil {
		t.Fatal("the agent did not mount again after the loan")
	}
	// A clean shutdown detaches it.
	stop()
	if agent.rt.mounts.pinned(vol.ID, y21) {
		t.Fatal("the stopped agent still pins its mount")
	}
	if got := slotState(t, vol, y21); got != "detached" {
		t.Fatalf("after the agent stopped, %s's slot is %s, want detached", y21, got)
	}
	// Restarted, it mounts again.
	agent2 := openWorkEngine(t, dir)
	startWorkAgent(t, agent2, y21)
	if heldMount(agent2, vol, y21, 10*time.Second) == nil {
		t.Fatal("the restarted agent does not hold its node's mount")
	}
	// Deleting the volume has the agent let go (it would hold the node's
	// mount past the lock timeout otherwise).
	if err := e.DeleteVM(ctx, vm.Cluster, vm.Name); err != nil {
		t.Fatal(err)
	}
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := e.DeleteVolume(dctx, vol.ID, true); err != nil {
		t.Fatalf("deleting the volume an agent holds: %v", err)
	}
	if agent2.rt.mounts.pinned(vol.ID, y21) {
		t.Fatal("the agent still pins the deleted volume's mount")
	}
	noWorkRecords(t, e)
}

// Several nodes' agents in one process (one runtime, as the provider
// tests' agent pool on etcd): releasing one node's mount does not wait
// for the other node's, which its agent holds for good. Before, the
// deletion waited for every mount of the volume in the runtime, forever.
func TestAgentsOfOneRuntimeRelease(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e, vol := workEnv(t, dir)
	agents := openWorkEngine(t, dir)
	startWorkAgent(t, agents, y21)
	startWorkAgent(t, agents, y22)
	for _, n := range []string{y21, y22} {
		if heldMount(agents, vol, n, 10*time.Second) == nil {
			t.Fatalf("the agent of %s does not hold its mount", n)
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := e.DeleteVolume(dctx, vol.ID, true); err != nil {
		t.Fatalf("deleting a volume two agents of one runtime hold: %v", err)
	}
	for _, n := range []string{y21, y22} {
		if agents.rt.mounts.pinned(vol.ID, n) {
			t.Errorf("the agent of %s still pins the deleted volume's mount", n)
		}
	}
	noWorkRecords(t, e)
}

// An agent that starts while another process still holds its node's
// mount (a killed agent's, until its lock expires) waits for it without
// asking itself to lend, and a loan asked of it meanwhile ends even when
// its hold runs out before the agent's mount gets in. Before, the agent's
// mount asked its own executor to lend, and the loan's release waited for
// the agent's later mount to detach: it never ended, and every later
// release of the volume on that node (DeleteVolume's) waited behind it.
func TestAgentMountsWhileAnotherHoldsIt(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e, vol := workEnv(t, dir)
	// The other process's mount of y21, held 2.5 s.
	fd, o, err := e.OpenVolumeMount(vol)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	other, err := kayofs.Mount(fd, y21, o)
	if err != nil {
		t.Fatal(err)
	}
	agent := openWorkEngine(t, dir)
	startWorkAgent(t, agent, y21)
	// A loan asked while the agent mounts; its 1 s hold runs out first.
	lent := make(chan error, 1)
	go func() {
		lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		lent <- e.releaseAgentMounts(lctx, vol.ID, []string{y21}, releaseHoldLend)
	}()
	time.Sleep(2500 * time.Millisecond)
	if err := detach(other); err != nil {
		t.Fatal(err)
	}
	if heldMount(agent, vol, y21, 15*time.Second) == nil {
		t.Fatal("the agent does not hold its node's mount once the other process let go")
	}
	if err := <-lent; err != nil {
		t.Fatalf("the loan asked while the agent mounted: %v", err)
	}
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := e.DeleteVolume(dctx, vol.ID, true); err != nil {
		t.Fatalf("deleting the volume after the loan: %v", err)
	}
	noWorkRecords(t, e)
}
