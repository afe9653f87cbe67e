package engine

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// callCount counts a store's commits and reads.
type callCount struct {
	countingStore
	commits atomic.Int64
}

func (s *callCount) Commit(ctx context.Context, cmps []store.Cmp, ops []store.Op) (int64, error) {
	s.commits.Add(1)
	return s.Store.Commit(ctx, cmps, ops)
}

// take returns the commits, gets, getmanys and lists since the last take.
func (s *callCount) take() [4]int64 {
	r := s.reads()
	return [4]int64{s.commits.Swap(0), r[0], r[1], r[2]}
}

// TestVMLifecycleStoreCalls logs what one VM's creation, live migration
// and deletion cost the store (commits, gets, getmanys, lists), the
// benchmark's phases (bench/vm_test.go), and holds the commits to their
// budget: each simulator call is its node's work (sim_driver.go), and the
// calls that can ride on a request the VM makes anyway do.
func TestVMLifecycleStoreCalls(t *testing.T) {
	ctx := context.Background()
	st := &callCount{}
	e, vol := storeEnv(t, func(b store.Store) store.Store { st.Store = b; return st })
	s := vmSpec(vol, "WEB01", 1024)
	s.Adapters = nil
	s.OwnerNode = "Y-21-2k8x64"
	if _, err := e.CreateVM(ctx, vmSpec(vol, "WARM", 512)); err != nil { // starts the executors
		t.Fatal(err)
	}
	st.take()
	if _, err := e.CreateVM(ctx, s); err != nil {
		t.Fatal(err)
	}
	create := st.take()
	s.OwnerNode = "Y-22-2k8x64"
	if _, err := e.UpdateVM(ctx, s); err != nil {
		t.Fatal(err)
	}
	migrate := st.take()
	if err := e.DeleteVM(ctx, "HVCLUSTER", "WEB01"); err != nil {
		t.Fatal(err)
	}
	destroy := st.take()
	t.Logf("commits, gets, getmanys, lists: create %v, live migration %v, delete %v", create, migrate, destroy)
	// Before the simulator was its nodes' work: 4, 3 and 3 commits. The
	// start and the discard ride on the files' requests, a live
	// migration's pre-copy on its intent's commit and the target's resume
	// on the switch's, and the completion of work done by this process's
	// own executors on the operation's next commit.
	for _, c := range []struct {
		phase string
		got   [4]int64
		max   int64
	}{{"create", create, 3}, {"live migration", migrate, 3}, {"delete", destroy, 2}} {
		if c.got[0] > c.max {
			t.Errorf("%s: %d commits, want at most %d", c.phase, c.got[0], c.max)
		}
	}
}
