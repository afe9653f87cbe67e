package store

import (
	"path/filepath"
	"testing"
)

// The marker of waiting processes: a process sees another's wait (two
// descriptors of one process conflict like two processes), never its
// own, and a wait ends with its last unmark.
func TestWaitMark(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kayo.db")
	a, b := &waitMark{path: path}, &waitMark{path: path}
	if a.others() || b.others() {
		t.Fatal("a waiter is seen before any process waits")
	}
	unmark1, unmark2 := a.mark(), a.mark()
	if !b.others() {
		t.Fatal("a wait of another process is not seen")
	}
	if a.others() {
		t.Fatal("a process sees its own wait as another's")
	}
	unmark1()
	if !b.others() {
		t.Fatal("one of two waits of a process ended and the other is no longer seen")
	}
	unmark2()
	if b.others() {
		t.Fatal("a wait that ended is still seen")
	}
}
