package engine

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// TestSimulatorAgentDownOnEtcd: on etcd, where no executor stands in for
// a node whose agent is down, the simulator's stop there is done and its
// discard drops the node's record (its guests went with its agent, as a
// qemu node's QEMU processes do), while a start there fails naming the
// node's missing agent.
func TestSimulatorAgentDownOnEtcd(t *testing.T) {
	ctx := context.Background()
	e, vm := simVMEnv(t)
	e.remoteDB = true // as on etcd, and no agent has run
	drv, err := e.Hypervisor(ctx, "HVCLUSTER")
	if err != nil {
		t.Fatal(err)
	}
	if err := drv.Start(ctx, y22, vm.hvVM(), hypervisor.Token(vm.Token)); !errors.Is(err, ErrAgentDown) {
		t.Fatalf("a start on %s without its agent: %v, want ErrAgentDown", y22, err)
	}
	if err := drv.Stop(ctx, y21, "WEB01", hypervisor.Token(vm.Token)); err != nil {
		t.Fatalf("a stop on %s whose agent is down: %v", y21, err)
	}
	if err := drv.Discard(ctx, y21, "WEB01"); err != nil {
		t.Fatalf("a discard on %s whose agent is down: %v", y21, err)
	}
	if _, err := drv.Status(ctx, y21, "WEB01"); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Fatalf("the record of %s after its discard: %v, want none", y21, err)
	}
}

// TestSimulatorCallReplacedIsAskedAgain: a simulator call whose request
// another caller's replaced before the node's executor ran it (a cluster
// leader's and `kayoctl host recover`'s starts of one VM) asks again and
// succeeds, the calls being idempotent, instead of failing busy.
func TestSimulatorCallReplacedIsAskedAgain(t *testing.T) {
	ctx := context.Background()
	e, vm := simVMEnv(t)
	drv, err := e.Hypervisor(ctx, "HVCLUSTER")
	if err != nil {
		t.Fatal(err)
	}
	tok := hypervisor.Token(vm.Token)
	release := make(chan struct{})
	var blocked atomic.Bool
	e.workHook = func(_ string, _ func(), op, phase string) {
		if op == workVMHypervisor && phase == "before" && blocked.CompareAndSwap(false, true) {
			<-release // the first call runs until the two starts are asked
		}
	}
	errs := make(chan error, 3)
	go func() { errs <- drv.Stop(ctx, y21, "WEB01", tok) }()
	for !blocked.Load() {
		time.Sleep(time.Millisecond)
	}
	go func() { errs <- drv.Start(ctx, y21, vm.hvVM(), tok) }()
	time.Sleep(100 * time.Millisecond)                          // its request is committed, waiting
	go func() { errs <- drv.Start(ctx, y21, vm.hvVM(), tok) }() // replaces it
	time.Sleep(100 * time.Millisecond)
	close(release)
	for range 3 {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatalf("a call: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a call still waits")
		}
	}
	if st, err := drv.Status(ctx, y21, "WEB01"); err != nil || st.State != hypervisor.Running {
		t.Fatalf("after the starts: %+v, %v", st, err)
	}
}

// simVMEnv is storeEnv's engine with VM WEB01 (no adapters) created on
// Y-21-2k8x64.
func simVMEnv(t *testing.T) (*Engine, VM) {
	t.Helper()
	e, vol := storeEnv(t, func(b store.Store) store.Store { return b })
	s := vmSpec(vol, "WEB01", 1024)
	s.Adapters = nil
	s.OwnerNode = y21
	vm, err := e.CreateVM(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return e, vm
}
