package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/enginetest"
)

func TestAgentsElectOneLeaderAndDetectSilence(t *testing.T) {
	for _, m := range enginetest.AgentModes {
		t.Run(m.Name, func(t *testing.T) { testAgentsElectOneLeaderAndDetectSilence(t, m.Leases) })
	}
}

func testAgentsElectOneLeaderAndDetectSilence(t *testing.T, leases bool) {
	ctx := context.Background()
	e, clk := enginetest.NewClocked(t, leases)
	enginetest.ThreeNodes(t, e, 2)
	mk := func(node string) *Agent {
		a, err := New(e, AgentConfig{Node: node, ID: node + "/test", LeaseTTL: 900 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a21, a22 := mk("Y-21-2k8x64"), mk("Y-22-2k8x64")
	tick := func(a *Agent) TickReport {
		t.Helper()
		r, err := a.Tick(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r1, r2 := tick(a21), tick(a22)
	if !r1.Leader || !r1.Elected || r1.Term != 1 || r2.Leader {
		t.Fatalf("first round: %+v %+v", r1, r2)
	}
	// Ticks of 300ms; Y-22 stays alive, Y-21 (the leader) dies after 1s.
	for i := 0; i < 3; i++ {
		clk.Advance(300 * time.Millisecond)
		if r := tick(a21); !r.Leader || r.Elected || r.Term != 1 {
			t.Fatalf("renewal: %+v", r)
		}
		if r := tick(a22); r.Leader {
			t.Fatalf("two leaders: %+v", r)
		}
	}
	// Y-21's agent dies. Y-22 takes over once the lease expires, and
	// declares Y-21 down once it has been silent past 2s.
	var downAt time.Duration
	var elected int64
	for step := time.Duration(0); step < 5*time.Second; step += 300 * time.Millisecond {
		clk.Advance(300 * time.Millisecond)
		r := tick(a22)
		if r.Elected {
			elected = r.Term
		}
		if len(r.Decisions) > 0 {
			if d := r.Decisions[0]; d.Node != "Y-21-2k8x64" || !d.Down || d.Silent <= 2*time.Second {
				t.Fatalf("decision %+v", d)
			}
			downAt = step + 300*time.Millisecond
			break
		}
	}
	if elected != 2 {
		t.Fatalf("Y-22 not elected with term 2 (got %d)", elected)
	}
	if downAt == 0 || downAt > 2400*time.Millisecond {
		t.Fatalf("Y-21 declared down after %s, want within timeout + one tick", downAt)
	}
	h, _ := e.GetHost(ctx, "Y-21-2k8x64")
	if !h.Down || h.DownReason != engine.DownByHeartbeat {
		t.Fatalf("Y-21: %+v", h)
	}
	// Y-23 never ran an agent: never judged.
	if h, _ := e.GetHost(ctx, "Y-23-2k8x64"); h.Down {
		t.Fatal("unmonitored Y-23 declared down")
	}
	// The old leader comes back (a paused process): its lease is gone, so
	// it cannot act; it heartbeats, and Y-22 declares it up.
	clk.Advance(300 * time.Millisecond)
	if r := tick(a21); r.Leader {
		t.Fatalf("stale leader still leads: %+v", r)
	}
	r := tick(a22)
	if len(r.Decisions) != 1 || r.Decisions[0].Down {
		t.Fatalf("Y-21 not declared up: %+v", r)
	}
	evs, _ := e.Events(ctx)
	var lines []string
	for _, ev := range evs {
		switch ev.Kind {
		case engine.EventLeaderElected:
			lines = append(lines, fmt.Sprintf("elected %s term %s", ev.Subject, ev.Detail["term"]))
		case engine.EventHostDown, engine.EventHostUp:
			lines = append(lines, fmt.Sprintf("%s %s by %s term %s", ev.Kind, ev.Subject, ev.Detail["by"], ev.Detail["term"]))
		}
	}
	got := strings.Join(lines, "; ")
	want := "elected Y-21-2k8x64 term 1; elected Y-22-2k8x64 term 2; host.down Y-21-2k8x64 by Y-22-2k8x64 term 2; " +
		"host.up Y-21-2k8x64 by Y-22-2k8x64 term 2"
	if got != want {
		t.Fatalf("events:\n got %s\nwant %s", got, want)
	}
}

func TestAgentFencedByLease(t *testing.T) {
	for _, m := range enginetest.AgentModes {
		t.Run(m.Name, func(t *testing.T) { testAgentFencedByLease(t, m.Leases) })
	}
}

func testAgentFencedByLease(t *testing.T, leases bool) {
	ctx := context.Background()
	e, clk := enginetest.NewClocked(t, leases)
	enginetest.ThreeNodes(t, e, 1)
	a21, _ := New(e, AgentConfig{Node: "Y-21-2k8x64", ID: "a21", LeaseTTL: time.Second})
	a22, _ := New(e, AgentConfig{Node: "Y-22-2k8x64", ID: "a22", LeaseTTL: time.Second})
	if _, err := a22.Tick(ctx); err != nil { // Y-22 heartbeats once, then is silent
		t.Fatal(err)
	}
	if r, _ := a21.Tick(ctx); r.Leader {
		t.Fatal("a21 leads while a22's lease is live")
	}
	// a22 is paused while its lease expires and a21 takes over.
	clk.Advance(1500 * time.Millisecond)
	if r, err := a21.Tick(ctx); err != nil || !r.Elected || r.Term != 2 {
		t.Fatalf("a21 takeover: %+v %v", r, err)
	}
	// a22 still believes it leads (term 1). Give it something to decide
	// (Y-23 heartbeats once, then is silent): its decision must not commit.
	if _, err := e.Heartbeat(ctx, "Y-23-2k8x64", "x", 1); err != nil {
		t.Fatal(err)
	}
	clk.Advance(1500 * time.Millisecond)
	_, err := e.LeaderTick(ctx, "HVCLUSTER", a22.leaderFence())
	if !errors.Is(err, engine.ErrConflict) {
		t.Fatalf("stale leader's decision: %v, want a conflict", err)
	}
	if h, _ := e.GetHost(ctx, "Y-23-2k8x64"); h.Down {
		t.Fatal("a stale leader's decision committed")
	}
	// Releasing hands the lease over at once.
	if r, err := a21.Tick(ctx); err != nil || !r.Leader {
		t.Fatalf("%+v %v", r, err)
	}
	if err := a21.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := a22.Tick(ctx); err != nil || !r.Elected || r.Term != 3 {
		t.Fatalf("after release: %+v %v", r, err)
	}
}
