package nodeagent

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store/memstore"
	"github.com/kayo-labs/terraform-provider-kayo/internal/enginetest"
	"github.com/kayo-labs/terraform-provider-kayo/internal/etcdtest"
	"github.com/kayo-labs/terraform-provider-kayo/internal/nodeagent/workexec"
)

// TestAgentLeaseClockSkew: an agent whose clock runs an hour ahead takes
// over a lease still renewed only when leases are records judged by the
// agents' clocks; on store leases the store's clock decides, and it
// waits until the holder stops renewing.
func TestAgentLeaseClockSkew(t *testing.T) {
	for _, m := range enginetest.AgentModes {
		t.Run(m.Name, func(t *testing.T) {
			ctx := context.Background()
			storeClk := enginetest.NewFakeClock(enginetest.FixedNow)
			skewed := func() time.Time { return storeClk.Now().Add(time.Hour) }
			ms := memstore.New()
			ms.SetClock(storeClk.Now)
			var st store.Store = ms
			if !m.Leases {
				st = enginetest.NoLeases{Store: ms}
			}
			e1, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, Store: st, Clock: storeClk.Now})
			if err != nil {
				t.Fatal(err)
			}
			e2, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, Store: st, Clock: skewed})
			if err != nil {
				t.Fatal(err)
			}
			enginetest.ThreeNodes(t, e1, 10)
			a1, _ := New(e1, AgentConfig{Node: "Y-21-2k8x64", ID: "a1", LeaseTTL: time.Second})
			a2, _ := New(e2, AgentConfig{Node: "Y-22-2k8x64", ID: "a2", LeaseTTL: time.Second})
			if r, err := a1.Tick(ctx); err != nil || !r.Elected {
				t.Fatalf("a1: %+v %v", r, err)
			}
			stolen := false
			for range 5 {
				storeClk.Advance(300 * time.Millisecond)
				if _, err := a1.Tick(ctx); err != nil {
					t.Fatal(err)
				}
				r, err := a2.Tick(ctx)
				if err != nil {
					t.Fatal(err)
				}
				stolen = stolen || r.Leader
			}
			if stolen != !m.Leases {
				t.Fatalf("skewed agent took a renewed lease: %v, want %v", stolen, !m.Leases)
			}
			if !m.Leases {
				return
			}
			// The holder stops renewing: the skewed agent takes over once
			// the store lease expires, not before.
			storeClk.Advance(900 * time.Millisecond)
			if r, _ := a2.Tick(ctx); r.Leader {
				t.Fatal("took over before the store lease expired")
			}
			storeClk.Advance(200 * time.Millisecond)
			if r, err := a2.Tick(ctx); err != nil || !r.Elected || r.Term != 2 {
				t.Fatalf("after expiry: %+v %v", r, err)
			}
		})
	}
}

// TestAgentLeaseStores: on bbolt and etcd (real time, two engines as two
// processes would have), a lease abandoned by its holder passes to the
// other agent after about its TTL; the abandoned holder is fenced off;
// Release hands the lease over at once.
func TestAgentLeaseStores(t *testing.T) {
	t.Parallel()
	stores := []struct {
		name string
		open func(t *testing.T) (*engine.Engine, *engine.Engine)
	}{
		{"bolt", func(t *testing.T) (*engine.Engine, *engine.Engine) {
			dir := filepath.Join(t.TempDir(), "d")
			open := func() *engine.Engine {
				e, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: dir})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = e.Close() })
				return e
			}
			return open(), open()
		}},
		{"etcd", func(t *testing.T) (*engine.Engine, *engine.Engine) {
			eps := etcdtest.Start(t, etcdtest.Options{}).Endpoints()
			return enginetest.OpenEtcd(t, eps, "/kayo-lease/"), enginetest.OpenEtcd(t, eps, "/kayo-lease/")
		}},
	}
	for _, sc := range stores {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e1, e2 := sc.open(t)
			enginetest.ThreeNodes(t, e1, 10)
			a1, _ := New(e1, AgentConfig{Node: "Y-21-2k8x64", ID: "a1", LeaseTTL: time.Second})
			a2, _ := New(e2, AgentConfig{Node: "Y-22-2k8x64", ID: "a2", LeaseTTL: time.Second})
			// a1's store lease is granted after granted: it lasts until
			// granted + TTL at least.
			granted := time.Now()
			if r, err := a1.Tick(ctx); err != nil || !r.Elected || r.Term != 1 {
				t.Fatalf("a1: %+v %v", r, err)
			}
			if r, err := a2.Tick(ctx); err != nil || r.Leader {
				t.Fatalf("a2 while a1 holds the lease: %+v %v", r, err)
			}
			if l, err := e2.Leader(ctx, "HVCLUSTER"); err != nil || !l.Live || l.Holder != "Y-21-2k8x64" || l.TTL != time.Second {
				t.Fatalf("Leader: %+v %v", l, err)
			}
			fence := a1.fence()
			// a1 stops renewing. etcd expires leases up to about a second late.
			var took time.Duration
			for took == 0 && time.Since(granted) < 6*time.Second {
				time.Sleep(100 * time.Millisecond)
				r, err := a2.Tick(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if r.Elected {
					if r.Term != 2 {
						t.Fatalf("a2 elected with term %d, want 2", r.Term)
					}
					took = time.Since(granted)
				}
			}
			if took < time.Second || took > 4*time.Second {
				t.Fatalf("a2 took the lease over %s after a1 stopped; TTL 1s", took)
			}
			_, err := e1.Store().Commit(ctx, []store.Cmp{fence}, []store.Op{store.Put("x", nil)})
			if !errors.Is(err, store.ErrConflict) {
				t.Fatalf("the abandoned holder's commit: %v, want a conflict", err)
			}
			if r, err := a1.Tick(ctx); err != nil || r.Leader {
				t.Fatalf("a1 after losing the lease: %+v %v", r, err)
			}
			if err := a2.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if l, err := e1.Leader(ctx, "HVCLUSTER"); err != nil || l.Live {
				t.Fatalf("Leader after release: %+v %v", l, err)
			}
			if r, err := a1.Tick(ctx); err != nil || !r.Elected || r.Term != 3 {
				t.Fatalf("a1 after release: %+v %v", r, err)
			}
			got := enginetest.Kinds(t, e1, "agent.")
			want := []string{"agent.leader_elected Y-21-2k8x64", "agent.leader_elected Y-22-2k8x64",
				"agent.leader_released Y-22-2k8x64", "agent.leader_elected Y-21-2k8x64"}
			if len(got) != len(want) {
				t.Fatalf("events %q, want %q", got, want)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("events %q, want %q", got, want)
				}
			}
		})
	}
}

// TestHeartbeatClockSkew: a leader whose clock runs an hour ahead sees
// every heartbeat record an hour old. Judged by records and its clock it
// declares a live node down; on store leases the node's alive key says it
// is alive, and once its agent stops, the key's expiry says it is down.
func TestHeartbeatClockSkew(t *testing.T) {
	for _, m := range enginetest.AgentModes {
		t.Run(m.Name, func(t *testing.T) {
			ctx := context.Background()
			storeClk := enginetest.NewFakeClock(enginetest.FixedNow)
			ms := memstore.New()
			ms.SetClock(storeClk.Now)
			var st store.Store = ms
			if !m.Leases {
				st = enginetest.NoLeases{Store: ms}
			}
			ahead, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, Store: st, Clock: func() time.Time { return storeClk.Now().Add(time.Hour) }})
			if err != nil {
				t.Fatal(err)
			}
			fair, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, Store: st, Clock: storeClk.Now})
			if err != nil {
				t.Fatal(err)
			}
			enginetest.ThreeNodes(t, fair, 2)
			leader, _ := New(ahead, AgentConfig{Node: "Y-21-2k8x64", ID: "leader", LeaseTTL: time.Second})
			node, _ := New(fair, AgentConfig{Node: "Y-22-2k8x64", ID: "node", LeaseTTL: time.Second})
			if r, err := leader.Tick(ctx); err != nil || !r.Elected {
				t.Fatalf("leader: %+v %v", r, err)
			}
			var decisions []engine.LivenessDecision
			for range 4 {
				storeClk.Advance(300 * time.Millisecond)
				if _, err := node.Tick(ctx); err != nil {
					t.Fatal(err)
				}
				r, err := leader.Tick(ctx)
				if err != nil {
					t.Fatal(err)
				}
				decisions = append(decisions, r.Decisions...)
			}
			if falseDown := len(decisions) > 0; falseDown != !m.Leases {
				t.Fatalf("decisions about a live node: %+v; want some: %v", decisions, !m.Leases)
			}
			if !m.Leases {
				return
			}
			// The node's agent stops: down once its alive key expires (2s).
			var downAfter time.Duration
			for step := 300 * time.Millisecond; step <= 3*time.Second && downAfter == 0; step += 300 * time.Millisecond {
				storeClk.Advance(300 * time.Millisecond)
				r, err := leader.Tick(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if len(r.Decisions) == 1 && r.Decisions[0].Node == "Y-22-2k8x64" && r.Decisions[0].Down {
					downAfter = step
				}
			}
			if downAfter < 2*time.Second || downAfter > 2400*time.Millisecond {
				t.Fatalf("Y-22 declared down %s after its agent stopped; timeout 2s", downAfter)
			}
			// It returns: up at the leader's next tick.
			if _, err := node.Tick(ctx); err != nil {
				t.Fatal(err)
			}
			if r, err := leader.Tick(ctx); err != nil || len(r.Decisions) != 1 || r.Decisions[0].Down {
				t.Fatalf("Y-22 back: %+v %v", r, err)
			}
		})
	}
}
