package hypervisor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestLiveModelConvergesAndIsDeterministic(t *testing.T) {
	p := DefaultLiveModel.Plan(2048)
	if !reflect.DeepEqual(p, LiveModel{}.Plan(2048)) {
		t.Fatal("zero model is not the default model")
	}
	if !p.Converged || len(p.Rounds) < 2 {
		t.Fatalf("2 GiB guest: want convergence after several rounds, got %+v", p)
	}
	if p.Rounds[0].SentMB != 2048 {
		t.Errorf("round 1 sends %v MB, want all 2048", p.Rounds[0].SentMB)
	}
	for i := 1; i < len(p.Rounds); i++ {
		if p.Rounds[i].SentMB >= p.Rounds[i-1].SentMB {
			t.Errorf("round %d sends %v MB, not less than round %d (%v)", i+1, p.Rounds[i].SentMB, i, p.Rounds[i-1].SentMB)
		}
	}
	if p.DowntimeMs <= 0 || p.DowntimeMs > 100 || p.DurationMs < 2048 {
		t.Errorf("downtime %d ms, duration %d ms: want a short downtime and ≥ 2 s of copying at 1 GB/s", p.DowntimeMs, p.DurationMs)
	}
	// A guest that dirties memory faster than the network sends it never
	// converges: the round limit or the non-shrinking rule pauses it.
	busy := LiveModel{DirtyMBps: 2000}.Plan(4096)
	if busy.Converged || busy.DowntimeMs <= p.DowntimeMs {
		t.Errorf("busy guest: %+v", busy)
	}
	if len(busy.Rounds) > DefaultLiveModel.MaxRounds {
		t.Errorf("busy guest ran %d rounds, limit %d", len(busy.Rounds), DefaultLiveModel.MaxRounds)
	}
	if QuickSaveMs(2048, 0) != 5120 {
		t.Errorf("QuickSaveMs(2048) = %d", QuickSaveMs(2048, 0))
	}
}

func TestSimulatorFencingAndMigrations(t *testing.T) {
	ctx := context.Background()
	s := NewSimulator(NewMemBackend(), "C")
	vm := VM{Name: "WEB01", MemoryMB: 1024, Processors: 2}
	a, b := Node{Name: "A", ProcessorVendor: "intel"}, Node{Name: "B", ProcessorVendor: "intel"}
	if err := s.Start(ctx, "A", vm, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx, "A", vm, 1); err != nil {
		t.Fatalf("Start is idempotent: %v", err)
	}
	// Live: pre-copy leaves the source paused and the target received.
	var rounds int
	res, err := s.PreCopy(ctx, a, b, vm, 1, func(p Progress) {
		if p.Phase == "pre-copy" {
			rounds++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if rounds != len(res.Plan.Rounds) {
		t.Errorf("progress reported %d rounds, plan has %d", rounds, len(res.Plan.Rounds))
	}
	if st, _ := s.Status(ctx, "A", "WEB01"); st.State != Paused {
		t.Errorf("source is %s, want paused", st.State)
	}
	if err := s.Resume(ctx, "B", vm, 2); err != nil {
		t.Fatal(err)
	}
	// The old owner's token is fenced now.
	if err := s.Resume(ctx, "A", vm, 1); !errors.Is(err, ErrFenced) {
		t.Fatalf("stale resume on the source: %v, want ErrFenced", err)
	}
	if err := s.Discard(ctx, "A", "WEB01"); err != nil {
		t.Fatal(err)
	}
	where, _ := s.Where(ctx, "WEB01")
	if len(where) != 1 || where[0].Node != "B" || where[0].State != Running || where[0].Token != 2 {
		t.Fatalf("after live migration: %+v", where)
	}

	// Live migration between vendors is refused.
	c := Node{Name: "C", ProcessorVendor: "amd"}
	if _, err := s.PreCopy(ctx, b, c, vm, 2, nil); !errors.Is(err, ErrIncompatible) {
		t.Fatalf("intel → amd live: %v", err)
	}
	// Quick: save to a file, restore elsewhere.
	f, err := os.Create(filepath.Join(t.TempDir(), "WEB01.vsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sr, err := s.Save(ctx, "B", "WEB01", 2, f, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := f.Stat(); fi.Size() != sr.Bytes || sr.Bytes != StateHeaderSize+1024<<20 {
		t.Errorf("state file %d bytes, result %d", fi.Size(), sr.Bytes)
	}
	if err := s.Restore(ctx, "C", vm, 3, f, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(ctx, "B", "WEB01", 2); !errors.Is(err, ErrFenced) {
		t.Fatalf("stale stop: %v", err)
	}
	if st, _ := s.Status(ctx, "C", "WEB01"); st.State != Running || st.Token != 3 || st.Boots != 1 {
		t.Errorf("after restore: %+v", st)
	}
	if err := s.Stop(ctx, "C", "WEB01", 3); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Status(ctx, "C", "WEB01"); st.State != Off {
		t.Errorf("after stop: %+v", st)
	}
	if _, err := s.Status(ctx, "D", "WEB01"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown node: %v", err)
	}
}
