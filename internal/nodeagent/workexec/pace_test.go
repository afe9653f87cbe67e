package workexec

import (
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
)

// An agent's fallback poll is slow (the heartbeat's pace) while pokes
// announce the work, and fast for busyFor after a poll found work that no
// poke announced.
func TestPollPace(t *testing.T) {
	p := newPollPace(100 * time.Millisecond)
	t0 := time.Unix(1000, 0)
	if got, want := p.next(t0, false), engine.WorkAgentTimeout/10; got != want {
		t.Fatalf("idle: %v, want %v", got, want)
	}
	if got := p.next(t0, true); got != 100*time.Millisecond {
		t.Fatalf("after a poll found work: %v, want 100ms", got)
	}
	if got := p.next(t0.Add(busyFor-time.Millisecond), false); got != 100*time.Millisecond {
		t.Fatalf("within %v of that: %v, want 100ms", busyFor, got)
	}
	if got, want := p.next(t0.Add(busyFor), false), engine.WorkAgentTimeout/10; got != want {
		t.Fatalf("%v later: %v, want %v", busyFor, got, want)
	}
	// A configured poll slower than the heartbeat's pace is kept.
	if got := newPollPace(time.Second).next(t0, false); got != time.Second {
		t.Fatalf("Poll 1s: %v, want 1s", got)
	}
}
