package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store/memstore"
)

// unreachableClusterStore fails every single-key read of one cluster's
// record once armed, as an etcd that times out would.
type unreachableClusterStore struct {
	store.Store
	key   string
	armed atomic.Bool
}

func (s *unreachableClusterStore) Get(ctx context.Context, key string) (store.KV, error) {
	if s.armed.Load() && key == s.key {
		return store.KV{}, fmt.Errorf("etcd: context deadline exceeded: %w", store.ErrUnavailable)
	}
	return s.Store.Get(ctx, key)
}

// TestHypervisorLookupFailureStopsNothing: when the record of a qemu
// cluster cannot be read, stopping or discarding one of its VMs fails
// with the database's error; it is not sent to the simulator instead (the
// wrong driver, which would report success while the VM runs on).
func TestHypervisorLookupFailureStopsNothing(t *testing.T) {
	ctx := context.Background()
	st := &unreachableClusterStore{Store: memstore.New(), key: clusterKey("HVCLUSTER")}
	e, err := openT(Config{Store: st, DataDir: t.TempDir(), Clock: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	mustHosts(t, e, seedSpec(y21, 21), seedSpec(y22, 22))
	if _, err := e.CreateCluster(ctx, seedCluster("HVCLUSTER", y21, y22)); err != nil {
		t.Fatal(err)
	}
	vol, err := e.CreateVolume(ctx, VolumeSpec{Cluster: "HVCLUSTER", LUN: "lun0", SizeGiB: 200, Label: "VMSTORE",
		DriveLetter: "O", BlockSize: 4096, NodeSlots: 16})
	if err != nil {
		t.Fatal(err)
	}
	vm, err := e.CreateVM(ctx, vmSpec(vol, "WEB01", 2048))
	if err != nil {
		t.Fatal(err)
	}
	// The cluster now runs qemu: the simulator is no longer its driver
	// (its record of WEB01 stays, to show whether anything reached it).
	kv, err := st.Get(ctx, st.key)
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(kv.Value, &rec); err != nil {
		t.Fatal(err)
	}
	rec["hypervisor"] = HypervisorQEMU
	if _, err := st.Commit(ctx, []store.Cmp{store.At(st.key, kv.ModRevision)}, []store.Op{putJSON(st.key, rec)}); err != nil {
		t.Fatal(err)
	}
	st.armed.Store(true)

	simRunning := func(when string) {
		t.Helper()
		s, err := e.Simulator("HVCLUSTER").Status(ctx, vm.Node, vm.Name)
		if err != nil || s.State != hypervisor.Running {
			t.Fatalf("%s: the simulator's WEB01 on %s is %+v (%v), want it untouched (running)", when, vm.Node, s, err)
		}
	}
	if err := e.failVM(ctx, vm, "test", true); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("failVM with the cluster unreadable: %v, want ErrUnavailable", err)
	}
	simRunning("after failVM")
	if err := e.deleteVM(ctx, vm); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("deleteVM with the cluster unreadable: %v, want ErrUnavailable", err)
	}
	simRunning("after deleteVM")
	if d, err := e.Hypervisor(ctx, "HVCLUSTER"); !errors.Is(err, store.ErrUnavailable) || d != nil {
		t.Errorf("Hypervisor with the cluster unreadable: %v, %v; want no driver and ErrUnavailable", d, err)
	}
	st.armed.Store(false)
	if d, err := e.Hypervisor(ctx, "HVCLUSTER"); err != nil || d.Name() != HypervisorQEMU {
		t.Errorf("Hypervisor with the cluster readable: %v, %v; want the qemu driver", d, err)
	}
}
