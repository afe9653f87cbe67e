package parentwatch

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestWaitReturnsWhenReparented(t *testing.T) {
	var ppid atomic.Int64
	ppid.Store(4242)
	done := make(chan error, 1)
	go func() {
		done <- wait(context.Background(), func() int { return int(ppid.Load()) }, time.Millisecond)
	}()
	select {
	case err := <-done:
		t.Fatalf("Wait returned (%v) while the parent lives", err)
	case <-time.After(50 * time.Millisecond):
	}
	ppid.Store(1) // the kernel gave the orphan to init
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Wait after reparenting: %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not notice the parent's death")
	}
}

func TestWaitReturnsWhenAdoptedBySubreaper(t *testing.T) {
	calls := 0
	err := wait(context.Background(), func() int {
		calls++
		if calls > 3 {
			return 777 // a subreaper, not init
		}
		return 4242
	}, time.Millisecond)
	if err != nil {
		t.Fatalf("Wait: %v, want nil", err)
	}
}

func TestWaitEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	err := wait(ctx, func() int { return 4242 }, time.Millisecond)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with a cancelled context: %v, want context.Canceled", err)
	}
}

func TestGone(t *testing.T) {
	for _, c := range []struct {
		first, now int
		want       bool
	}{
		{4242, 4242, false},
		{4242, 1, true},
		{4242, 777, true},
		{1, 1, false}, // started by init: nothing to lose
	} {
		if got := Gone(c.first, c.now); got != c.want {
			t.Errorf("Gone(%d, %d) = %v, want %v", c.first, c.now, got, c.want)
		}
	}
}
