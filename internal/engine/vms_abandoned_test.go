package engine

import (
	"context"
	"testing"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// A creation abandoned before anything ran (its pending operation names no
// source or target node) is rolled back by the next call: the rollback's
// commit sweeps each node's node-work result once. It once swept "" twice
// and the commit was refused ("writes key ... twice"), so the VM could be
// neither created again nor deleted.
func TestAbandonedCreationRollsBack(t *testing.T) {
	ctx := context.Background()
	e, vol := vmEnv(t)
	s := vmSpec(vol, "WEB01", 2048)
	vm, err := e.CreateVM(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	// The record as a creation that crashed leaves it: pending, held by a
	// holder of this process that no longer runs the operation.
	vm.Pending = &Pending{ID: randomHex(8), Op: opCreate, Phase: PhasePrepare, Holder: e.newHolder(), StartedAt: e.now().UTC()}
	if _, err := e.st.Commit(ctx, nil, []store.Op{putJSON(vmKey(vm.Cluster, vm.Name), vm)}); err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteVM(ctx, vm.Cluster, vm.Name); err != nil {
		t.Fatalf("deleting the VM whose creation was abandoned: %v", err)
	}
	if _, err := e.GetVM(ctx, vm.Cluster, vm.Name); err == nil {
		t.Fatal("the VM is still there")
	}
	if _, err := e.CreateVM(ctx, s); err != nil {
		t.Fatalf("creating it again: %v", err)
	}
}
