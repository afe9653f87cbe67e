package engine

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store/memstore"
)

// countingStore counts the reads an engine operation makes.
type countingStore struct {
	store.Store
	gets, getManys, lists atomic.Int64
}

func (s *countingStore) Get(ctx context.Context, key string) (store.KV, error) {
	s.gets.Add(1)
	return s.Store.Get(ctx, key)
}

func (s *countingStore) GetMany(ctx context.Context, keys ...string) ([]store.KV, error) {
	s.getManys.Add(1)
	return s.Store.GetMany(ctx, keys...)
}

func (s *countingStore) List(ctx context.Context, prefix string) ([]store.KV, int64, error) {
	s.lists.Add(1)
	return s.Store.List(ctx, prefix)
}

func (s *countingStore) reads() [3]int64 {
	return [3]int64{s.gets.Swap(0), s.getManys.Swap(0), s.lists.Swap(0)}
}

// TestUpdateHostReads: a node update reads the host and its cluster's
// guard records in one GetMany once the engine knows the host's cluster,
// in two before that or when the host moved to another cluster, and the
// outcome is the same either way.
func TestUpdateHostReads(t *testing.T) {
	ctx := context.Background()
	st := &countingStore{Store: memstore.New()}
	setup, err := openT(Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	mustHosts(t, setup, seedSpec("H1", 21), seedSpec("H2", 22), seedSpec("H3", 23), seedSpec("LONE", 24))
	if _, err := setup.CreateCluster(ctx, seedCluster("CA", "H1", "H2")); err != nil {
		t.Fatal(err)
	}
	e, err := openT(Config{Store: st}) // a new process: knows no host's cluster
	if err != nil {
		t.Fatal(err)
	}
	memory := int64(40000)
	update := func(name string) (Host, [3]int64) {
		t.Helper()
		spec := seedSpec(name, map[string]int{"H1": 21, "H2": 22, "H3": 23, "LONE": 24}[name])
		memory++
		spec.MemoryMB = memory
		st.reads()
		h, err := e.UpdateHost(ctx, spec)
		reads := st.reads()
		if err != nil {
			t.Fatalf("UpdateHost(%s): %v", name, err)
		}
		if got, err := setup.GetHost(ctx, name); err != nil || got.MemoryMB != memory || got.Revision != h.Revision {
			t.Fatalf("%s after update: %+v, %v; UpdateHost returned revision %d", name, got, err, h.Revision)
		}
		return h, reads
	}
	steps := []struct {
		name   string
		before func()
		host   string
		// reads: Get, GetMany, List calls of the update.
		reads   [3]int64
		cluster string
	}{
		{name: "host in no cluster", host: "LONE", reads: [3]int64{0, 1, 0}},
		{name: "host in no cluster again", host: "LONE", reads: [3]int64{0, 1, 0}},
		{name: "node, cluster not known yet", host: "H1", reads: [3]int64{0, 2, 0}, cluster: "CA"},
		{name: "node, cluster known", host: "H1", reads: [3]int64{0, 1, 0}, cluster: "CA"},
		{name: "node, cluster known again", host: "H1", reads: [3]int64{0, 1, 0}, cluster: "CA"},
		{name: "node moved to another cluster", host: "H1", reads: [3]int64{0, 2, 0}, cluster: "CB", before: func() {
			if err := setup.DeleteCluster(ctx, "CA"); err != nil {
				t.Fatal(err)
			}
			cb := seedCluster("CB", "H1", "H3")
			cb.StaticAddress = "192.0.2.60/24"
			if _, err := setup.CreateCluster(ctx, cb); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "node in the new cluster", host: "H1", reads: [3]int64{0, 1, 0}, cluster: "CB"},
		{name: "node left its cluster", host: "H1", reads: [3]int64{0, 1, 0}, before: func() {
			if err := setup.DeleteCluster(ctx, "CB"); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		h, got := update(s.host)
		if got != s.reads {
			t.Errorf("%s: reads (Get, GetMany, List) = %v, want %v", s.name, got, s.reads)
		}
		if h.Cluster != s.cluster {
			t.Errorf("%s: UpdateHost returned cluster %q, want %q", s.name, h.Cluster, s.cluster)
		}
	}
	if _, err := e.UpdateHost(ctx, seedSpec("NOPE", 30)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("UpdateHost of an unregistered host: %v, want ErrNotFound", err)
	}
}

// TestQuorumGuardReads: QuorumGuard and GetQuorum read the cluster, its
// quorum and liveness records in one GetMany.
func TestQuorumGuardReads(t *testing.T) {
	ctx := context.Background()
	st := &countingStore{Store: memstore.New()}
	e, err := openT(Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	mustHosts(t, e, seedSpec("H1", 21), seedSpec("H2", 22), seedSpec("H3", 23))
	if _, err := e.CreateCluster(ctx, seedCluster("CA", "H1", "H2", "H3")); err != nil {
		t.Fatal(err)
	}
	st.reads()
	cmps, err := e.QuorumGuard(ctx, "CA", "testing")
	if err != nil || len(cmps) == 0 {
		t.Fatalf("QuorumGuard: %v, %v", cmps, err)
	}
	if got := st.reads(); got != [3]int64{0, 1, 0} {
		t.Errorf("QuorumGuard reads (Get, GetMany, List) = %v, want one GetMany", got)
	}
	q, err := e.GetQuorum(ctx, "CA")
	if err != nil || !q.Status.HasQuorum || q.Status.NodesUp != 3 || q.Status.TotalVotes != 3 {
		t.Fatalf("GetQuorum: %+v, %v", q, err)
	}
	if got := st.reads(); got != [3]int64{0, 1, 0} {
		t.Errorf("GetQuorum reads (Get, GetMany, List) = %v, want one GetMany", got)
	}
	if _, err := e.QuorumGuard(ctx, "NOPE", "testing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("QuorumGuard of a missing cluster: %v", err)
	}
}

// TestClusterHeadRecord: the decoded head of a cluster record is reused
// only for the very same bytes, and callers get their own node lists.
func TestClusterHeadRecord(t *testing.T) {
	e, err := openT(Config{Store: memstore.New()})
	if err != nil {
		t.Fatal(err)
	}
	rec := func(nodes ...string) []byte {
		return []byte(`{"name":"CA","nodes":["` + strings.Join(nodes, `","`) + `"],"validation":[{"test":"x"}]}`)
	}
	steps := []struct {
		name    string
		kv      store.KV
		nodes   []string
		wantErr error
	}{
		{"first", store.KV{Key: "clusters/CA", Value: rec("H1", "H2"), ModRevision: 5}, []string{"H1", "H2"}, nil},
		{"same bytes", store.KV{Key: "clusters/CA", Value: rec("H1", "H2"), ModRevision: 5}, []string{"H1", "H2"}, nil},
		{"changed", store.KV{Key: "clusters/CA", Value: rec("H1", "H3"), ModRevision: 9}, []string{"H1", "H3"}, nil},
		{"same revision, other bytes", store.KV{Key: "clusters/CA", Value: rec("H4"), ModRevision: 9}, []string{"H4"}, nil},
		{"missing", store.KV{Key: "clusters/CA"}, nil, ErrNotFound},
		{"corrupt", store.KV{Key: "clusters/CA", Value: []byte("{"), ModRevision: 10}, nil, nil},
	}
	for _, s := range steps {
		c, err := e.clusterHeadRecord("CA", s.kv)
		switch {
		case s.name == "corrupt":
			if err == nil {
				t.Errorf("%s: no error", s.name)
			}
			continue
		case s.wantErr != nil:
			if !errors.Is(err, s.wantErr) {
				t.Errorf("%s: error %v, want %v", s.name, err, s.wantErr)
			}
			continue
		case err != nil:
			t.Fatalf("%s: %v", s.name, err)
		}
		if !slices.Equal(c.Nodes, s.nodes) || c.Revision != s.kv.ModRevision || c.Name != "CA" || c.Validation != nil {
			t.Errorf("%s: got %+v, want nodes %v at revision %d without the report", s.name, c, s.nodes, s.kv.ModRevision)
		}
		c.Nodes[0] = "CHANGED" // the caller's own copy
	}
}
