package engine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/etcdtest"
)

func openEtcdEngine(t testing.TB, eps []string, prefix string) *Engine {
	t.Helper()
	e, err := openT(Config{DataDir: t.TempDir(), Etcd: &store.EtcdOptions{Endpoints: eps, Prefix: prefix}})
	if err != nil {
		t.Fatalf("Open on etcd: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// TestEtcdContention: ten engine clients (separate engines and etcd
// connections, as separate processes would have) change hosts of one
// cluster at once: eight each their own host, two the same host. Every
// acknowledged change is in the record's history at its own revision, the
// last acknowledged one is what the record holds, losers either retried or
// got an error wrapping ErrConflict, and no record is corrupt.
func TestEtcdContention(t *testing.T) {
	t.Parallel()
	c := etcdtest.Start(t, etcdtest.Options{})
	const prefix = "/kayo-contention/"
	ctx := context.Background()
	setup := openEtcdEngine(t, c.Endpoints(), prefix)
	var names []string
	for i := 1; i <= 9; i++ {
		names = append(names, fmt.Sprintf("NODE%02d", i))
		mustHosts(t, setup, seedSpec(names[i-1], 100+i))
	}
	if _, err := setup.CreateCluster(ctx, seedCluster("HVCLUSTER", names...)); err != nil {
		t.Fatal(err)
	}

	type ack struct {
		rev    int64
		memory int64
	}
	const clients, each = 10, 12
	var (
		mu        sync.Mutex
		acks      = map[string][]ack{}
		conflicts = map[string]int{}
		wg        sync.WaitGroup
	)
	for cl := range clients {
		host := names[min(cl, 8)] // clients 8 and 9 share NODE09
		e := openEtcdEngine(t, c.Endpoints(), prefix)
		wg.Go(func() {
			for i := range each {
				spec := seedSpec(host, 101+min(cl, 8))
				spec.MemoryMB = int64(32768 + cl*1000 + i)
				h, err := e.UpdateHost(ctx, spec)
				if errors.Is(err, store.ErrConflict) {
					// A clear error after the engine's retries. Updates of
					// different nodes can conflict too: the quorum guard
					// compares every node's revision.
					mu.Lock()
					conflicts[host]++
					mu.Unlock()
					continue
				}
				if err != nil {
					t.Errorf("client %d, %s: %v", cl, host, err)
					return
				}
				if h.MemoryMB != spec.MemoryMB {
					t.Errorf("client %d: UpdateHost returned memory %d, wrote %d", cl, h.MemoryMB, spec.MemoryMB)
				}
				mu.Lock()
				acks[host] = append(acks[host], ack{h.Revision, spec.MemoryMB})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	evs, err := setup.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	updates := map[string][]int64{}
	for _, ev := range evs {
		if ev.Kind == EventHostUpdated {
			updates[ev.Subject] = append(updates[ev.Subject], ev.Revision)
		}
	}
	for _, name := range names {
		as := acks[name]
		attempts := each
		if name == "NODE09" {
			attempts = 2 * each
		}
		if len(as)+conflicts[name] != attempts {
			t.Errorf("%s: %d acknowledged + %d conflict errors != %d attempts", name, len(as), conflicts[name], attempts)
		}
		if len(as) == 0 {
			t.Errorf("%s: no update got through", name)
			continue
		}
		revs := make([]int64, len(as))
		for i, a := range as {
			revs[i] = a.rev
		}
		slices.Sort(revs)
		if len(slices.Compact(slices.Clone(revs))) != len(revs) {
			t.Errorf("%s: two acknowledged updates share a revision: %v", name, revs)
		}
		got := slices.Clone(updates[name])
		slices.Sort(got)
		if !slices.Equal(got, revs) {
			t.Errorf("%s: history revisions %v, acknowledged %v (lost or phantom updates)", name, got, revs)
		}
		h, err := setup.GetHost(ctx, name)
		if err != nil {
			t.Fatalf("%s: %v (corrupt record?)", name, err)
		}
		last := slices.MaxFunc(as, func(a, b ack) int { return int(a.rev - b.rev) })
		if h.MemoryMB != last.memory || h.Revision != last.rev {
			t.Errorf("%s holds memory %d at revision %d; the last acknowledged write was %d at %d",
				name, h.MemoryMB, h.Revision, last.memory, last.rev)
		}
	}
	cl, err := setup.GetCluster(ctx, "HVCLUSTER")
	if err != nil || len(cl.Nodes) != 9 {
		t.Fatalf("cluster after contention: %+v, %v", cl, err)
	}
	t.Logf("NODE09: %d acknowledged; conflict errors after retries per host: %v", len(acks["NODE09"]), conflicts)
}

// TestEtcdEngineUnreachable: Open fails quickly with the endpoint named.
func TestEtcdEngineUnreachable(t *testing.T) {
	t.Parallel()
	start := time.Now()
	_, err := openT(Config{DataDir: t.TempDir(), Etcd: &store.EtcdOptions{
		Endpoints: []string{"http://127.0.0.1:1"}, DialTimeout: 300 * time.Millisecond}})
	if err == nil || !errors.Is(err, store.ErrUnavailable) || time.Since(start) > 3*time.Second {
		t.Fatalf("Open on an unreachable etcd: %v after %s", err, time.Since(start))
	}
}

// Results of the floors ("raw-etcd/c1", "rawlog-bolt/c16"...), for the
// ratios.
var rawOpsPerSec sync.Map // string -> float64

// benchRecord and benchEvent, of the rawlog floors, are about the size of
// a host record and of the event an update of it writes.
var (
	benchRecord = strings.Repeat("r", 450)
	benchEvent  = strings.Repeat("e", 200)
)

// BenchmarkEngineOps measures engine operations per second on bbolt (fsync
// on) and on a single-member etcd on loopback, at concurrency 1 and 16
// (each goroutine its own host, one engine), beside a floor per store: one
// read and one compare-and-swap write of one key per goroutine, in a loop.
// The etcd floor is the raw client (a Get and a Txn). bbolt has no client
// below the store: its floor is store.Bolt itself (a Get and a Commit),
// because a bare bbolt handle kept open would measure a different design
// (the store opens and locks the file per operation so processes share it).
// Engine benchmarks report x-raw, the floor's ops/s divided by theirs.
// bolt-nosync runs bbolt without fsync beside its own floors: on a machine
// whose disk others share, fsync latency swamps the bbolt ratios, and this
// pair shows the engine's own cost (CPU, file opens) alone.
//
// The rawlog floors also append one history entry to the same commit, as
// every engine change does (its event): on bbolt, appended keys grow the
// file and each commit writes more pages, so "raw" alone understates what
// any engine change must cost. Engine benchmarks report x-rawlog beside
// x-raw.
//
// The operation is UpdateHost of one of 16 hosts: "host", hosts in no
// cluster (one read, one revision-checked commit with its event: the same
// round trips as the floor); "node", nodes of one 16-node cluster (the host
// and its cluster's cluster, quorum and liveness records in one GetMany,
// validation and a commit comparing those records; updates of different
// nodes do not conflict).
func BenchmarkEngineOps(b *testing.B) {
	ctx := context.Background()
	var eps []string
	etcdOK := etcdtest.Binary() != ""
	if etcdOK {
		eps = etcdtest.Start(b, etcdtest.Options{}).Endpoints()
	}
	seq := 0
	for _, conc := range []int{1, 16} {
		for _, floor := range []string{"raw", "rawlog"} {
			logged := floor == "rawlog"
			b.Run(fmt.Sprintf("%s-etcd/c%d", floor, conc), func(b *testing.B) {
				if !etcdOK {
					etcdtest.Require(b)
				}
				cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second})
				if err != nil {
					b.Fatal(err)
				}
				defer cli.Close()
				seq++
				prefix := fmt.Sprintf("/bench-raw/%d/", seq)
				var n atomic.Int64
				ops := runParallel(b, conc, func(g int) error {
					key := fmt.Sprintf("%skey%d", prefix, g)
					resp, err := cli.Get(ctx, key)
					if err != nil {
						return err
					}
					var cmp clientv3.Cmp
					if len(resp.Kvs) == 0 {
						cmp = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
					} else {
						cmp = clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)
					}
					// raw is the floor as first measured (a short value).
					puts := []clientv3.Op{clientv3.OpPut(key, "value of about the size of a record")}
					if logged {
						puts = []clientv3.Op{clientv3.OpPut(key, benchRecord),
							clientv3.OpPut(fmt.Sprintf("%slog/%020d", prefix, n.Add(1)), benchEvent)}
					}
					tr, err := cli.Txn(ctx).If(cmp).Then(puts...).Commit()
					if err == nil && !tr.Succeeded {
						err = errors.New("raw CAS conflict")
					}
					return err
				})
				rawOpsPerSec.Store(fmt.Sprintf("%s-etcd/c%d", floor, conc), ops)
			})
			for _, kind := range []string{"bolt", "bolt-nosync"} {
				b.Run(fmt.Sprintf("%s-%s/c%d", floor, kind, conc), func(b *testing.B) {
					st, err := store.OpenBolt(filepath.Join(b.TempDir(), DatabaseFile), store.BoltOptions{NoSync: kind == "bolt-nosync"})
					if err != nil {
						b.Fatal(err)
					}
					defer st.Close()
					var n atomic.Int64
					ops := runParallel(b, conc, func(g int) error {
						key := fmt.Sprintf("key%d", g)
						cmp := store.Absent(key)
						if kv, err := st.Get(ctx, key); err == nil {
							cmp = store.At(key, kv.ModRevision)
						} else if !errors.Is(err, store.ErrNotFound) {
							return err
						}
						puts := []store.Op{store.Put(key, []byte("value of about the size of a record"))}
						if logged {
							puts = []store.Op{store.Put(key, []byte(benchRecord)),
								store.Put(fmt.Sprintf("log/%020d", n.Add(1)), []byte(benchEvent))}
						}
						_, err := st.Commit(ctx, []store.Cmp{cmp}, puts)
						return err
					})
					rawOpsPerSec.Store(fmt.Sprintf("%s-%s/c%d", floor, kind, conc), ops)
				})
			}
		}
		for _, bc := range []struct{ kind, mode string }{
			{"bolt", "host"}, {"etcd", "host"}, {"bolt", "node"}, {"etcd", "node"},
			{"bolt-nosync", "host"}, {"bolt-nosync", "node"},
		} {
			kind := bc.kind
			b.Run(fmt.Sprintf("%s/%s/c%d", kind, bc.mode, conc), func(b *testing.B) {
				var e *Engine
				var err error
				switch kind {
				case "bolt":
					e, err = openT(Config{DataDir: filepath.Join(b.TempDir(), "d")})
				case "bolt-nosync":
					var st *store.Bolt
					if st, err = store.OpenBolt(filepath.Join(b.TempDir(), DatabaseFile), store.BoltOptions{NoSync: true}); err == nil {
						e, err = openT(Config{Store: st})
					}
				default:
					if !etcdOK {
						etcdtest.Require(b)
					}
					seq++
					e, err = openT(Config{DataDir: b.TempDir(), Etcd: &store.EtcdOptions{Endpoints: eps,
						Prefix: fmt.Sprintf("/bench-engine/%d/", seq)}})
				}
				if err != nil {
					b.Fatal(err)
				}
				defer e.Close()
				var names []string
				for i := range 16 {
					names = append(names, fmt.Sprintf("NODE%02d", i+1))
					if _, err := e.CreateHost(ctx, seedSpec(names[i], 100+i)); err != nil {
						b.Fatal(err)
					}
				}
				if bc.mode == "node" {
					if _, err := e.CreateCluster(ctx, seedCluster("HVCLUSTER", names...)); err != nil {
						b.Fatal(err)
					}
				}
				var n, gaveUp atomic.Int64
				ops := runParallel(b, conc, func(g int) error {
					spec := seedSpec(names[g], 100+g)
					spec.MemoryMB = 32768 + n.Add(1)%1024
					_, err := e.UpdateHost(ctx, spec)
					if errors.Is(err, store.ErrConflict) {
						gaveUp.Add(1) // after the engine's 20 attempts
						return nil
					}
					return err
				})
				b.ReportMetric(float64(gaveUp.Load())/float64(b.N), "conflict-errors/op")
				for _, floor := range []string{"raw", "rawlog"} {
					if raw, ok := rawOpsPerSec.Load(fmt.Sprintf("%s-%s/c%d", floor, kind, conc)); ok && ops > 0 {
						b.ReportMetric(raw.(float64)/ops, "x-"+floor)
					}
				}
			})
		}
	}
}

// runParallel runs b.N calls of op spread over conc goroutines (goroutine
// g passes g) and reports and returns operations per second.
func runParallel(b *testing.B, conc int, op func(g int) error) float64 {
	b.Helper()
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	errs := make(chan error, conc)
	b.ResetTimer()
	start := time.Now()
	for g := range conc {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if err := op(g); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	ops := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(ops, "ops/s")
	return ops
}
