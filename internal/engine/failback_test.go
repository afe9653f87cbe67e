package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

func TestFailbackAllowed(t *testing.T) {
	at := func(h int) time.Time { return time.Date(2026, 11, 25, h, 30, 0, 0, time.UTC) }
	cases := []struct {
		f    FailbackSpec
		hour int
		want bool
	}{
		{FailbackSpec{Mode: FailbackPrevent}, 3, false},
		{FailbackSpec{Mode: FailbackImmediate}, 3, true},
		{FailbackSpec{Mode: FailbackWindow, WindowStartHour: 1, WindowEndHour: 4}, 0, false},
		{FailbackSpec{Mode: FailbackWindow, WindowStartHour: 1, WindowEndHour: 4}, 1, true},
		{FailbackSpec{Mode: FailbackWindow, WindowStartHour: 1, WindowEndHour: 4}, 4, true},
		{FailbackSpec{Mode: FailbackWindow, WindowStartHour: 1, WindowEndHour: 4}, 5, false},
		{FailbackSpec{Mode: FailbackWindow, WindowStartHour: 22, WindowEndHour: 2}, 23, true},
		{FailbackSpec{Mode: FailbackWindow, WindowStartHour: 22, WindowEndHour: 2}, 0, true},
		{FailbackSpec{Mode: FailbackWindow, WindowStartHour: 22, WindowEndHour: 2}, 2, true},
		{FailbackSpec{Mode: FailbackWindow, WindowStartHour: 22, WindowEndHour: 2}, 12, false},
		{FailbackSpec{Mode: FailbackWindow, WindowStartHour: 7, WindowEndHour: 7}, 7, true},
	}
	for _, c := range cases {
		if got := FailbackAllowed(c.f, at(c.hour)); got != c.want {
			t.Errorf("%+v at %02d:30 UTC: %v, want %v", c.f, c.hour, got, c.want)
		}
	}
	// Another zone is read in UTC.
	cet := time.FixedZone("CET", 3600)
	if !FailbackAllowed(FailbackSpec{Mode: FailbackWindow, WindowStartHour: 1, WindowEndHour: 1}, time.Date(2026, 1, 1, 2, 0, 0, 0, cet)) {
		t.Error("02:00 CET is 01:00 UTC: inside 1-1")
	}
}

// TestFailbackByLeader: after a failover and the node's return, the
// leader agent fails VMs back per policy: immediate at once, window only
// within its hours (injected clock, UTC), prevent never; each move is a
// migration with a new token, fenced by the lease.
func TestFailbackByLeader(t *testing.T) {
	ctx := context.Background()
	e, vol := vmEnv(t, seedSpec(y21, 21), seedSpec(y22, 22), seedSpec(y23, 23))
	clk := &fakeClock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	e.now = clk.Now
	mk := func(name string, f FailbackSpec) {
		s := vmSpec(vol, name, 1024)
		s.PreferredOwners, s.Failback, s.MaxFailures = []string{y22, y21}, f, 2
		if vm := mustVM(t, e, s); vm.Node != y22 {
			t.Fatalf("%s placed on %s", name, vm.Node)
		}
	}
	mk("IMM01", FailbackSpec{Mode: FailbackImmediate})
	mk("WIN01", FailbackSpec{Mode: FailbackWindow, WindowStartHour: 22, WindowEndHour: 2})
	mk("PRE01", FailbackSpec{Mode: FailbackPrevent})

	var seq int64
	tick := func() LeaderReport {
		t.Helper()
		seq++
		return leaderTick(t, e, "HVCLUSTER", y21, seq)
	}
	tick()
	if _, err := e.MarkHostDown(ctx, y22, DownByLab); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"IMM01", "WIN01", "PRE01"} {
		if vm := getVM(t, e, n); vm.Node != y21 || vm.Status != VMRunning {
			t.Fatalf("%s after failover: %+v", n, vm)
		}
	}
	if rep := tick(); len(rep.Failbacks) != 0 {
		t.Fatalf("failback while the home is down: %+v", rep.Failbacks)
	}
	if _, err := e.MarkHostUp(ctx, y22); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	rep := tick()
	if len(rep.Failbacks) != 1 || rep.Failbacks[0].VM != "IMM01" || rep.Failbacks[0].To != y22 {
		t.Fatalf("12:00 UTC: want only IMM01 back, got %+v", rep.Failbacks)
	}
	runningOn(t, e, "IMM01", y22)
	if vm := getVM(t, e, "WIN01"); vm.Node != y21 {
		t.Fatalf("WIN01 moved outside its window: %+v", vm)
	}
	clk.Advance(11 * time.Hour) // 23:00 UTC
	rep = tick()
	if len(rep.Failbacks) != 1 || rep.Failbacks[0].VM != "WIN01" {
		t.Fatalf("23:00 UTC: want WIN01 back, got %+v", rep.Failbacks)
	}
	if rep := tick(); len(rep.Failbacks) != 0 {
		t.Fatalf("failback repeated: %+v", rep.Failbacks)
	}
	if vm := getVM(t, e, "PRE01"); vm.Node != y21 {
		t.Fatalf("PRE01 (prevent) moved: %+v", vm)
	}
	// The records of the VMs that went back are gone; PRE01's stays.
	recs, _, err := listJSON[failbackRecord](ctx, e.st, failbackPrefix)
	if err != nil || len(recs) != 1 || recs[0].VM != "PRE01" {
		t.Fatalf("failback records: %v %+v", err, recs)
	}
	// A stale leader (lease taken over) cannot fail back.
	chains := ownerChain(t, e)
	if last := chains["IMM01"][len(chains["IMM01"])-1]; last.Detail["to"] != y22 || last.Detail["token"] != "3" {
		t.Errorf("IMM01's last owner change: %+v", last.Detail)
	}
	evs, _ := e.Events(ctx)
	n := 0
	for _, ev := range evs {
		if ev.Kind == EventVMFailback {
			n++
			if ev.Detail["term"] != "1" || ev.Detail["to"] != y22 {
				t.Errorf("failback event %+v", ev.Detail)
			}
		}
	}
	if n != 2 {
		t.Errorf("%d vm.failback events, want 2", n)
	}
}

// leaderTick plays one tick of node's agent while it leads cluster
// (internal/nodeagent/agent.go): its heartbeat, then LeaderTick fenced by
// the lease record, taken with term 1 on the first call.
func leaderTick(t *testing.T, e *Engine, cluster, node string, seq int64) LeaderReport {
	t.Helper()
	ctx := context.Background()
	if _, err := e.Heartbeat(ctx, node, node+"/test", seq); err != nil {
		t.Fatal(err)
	}
	var l Lease
	rev, err := getJSON(ctx, e.st, leaseKey(cluster), &l)
	if errors.Is(err, ErrNotFound) {
		now := e.now().UTC()
		l = Lease{Cluster: cluster, Holder: node, Agent: node + "/test", Term: 1, Acquired: now, Expires: now.Add(time.Hour)}
		rev, err = e.st.Commit(ctx, []store.Cmp{store.Absent(leaseKey(cluster))}, []store.Op{putJSON(leaseKey(cluster), l)})
	}
	if err != nil {
		t.Fatal(err)
	}
	rep, err := e.LeaderTick(ctx, cluster, LeaderFence{Node: node, Agent: l.Agent, Term: l.Term, Fence: store.At(leaseKey(cluster), rev)})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}
