package store

import (
	"context"
	"os"
	"sync"
	"time"
)

// Turns between processes. A process whose operations keep coming keeps
// the file open (bolt_keep.go), and when its handle ages it lets the file
// go and takes it again within microseconds. Another process polls for
// the lock (bolt_open.go) and almost never finds it free then: a writer
// beside a process that only reads could wait until its lock timeout
// (TestBoltWriterNotStarvedByReaders; in the VM benchmark, node agents
// whose commits waited 5s while the provider polled for their results).
//
// So a process that waits for the file says so: it holds a shared lock on
// the marker file (WaitFile) while it waits. A process that has held the
// file for keepTurn and finds the marker held by another lets the file go
// and waits, up to yieldMax, for the waiter to take it (the marker then
// comes free) before it opens the file again, now a waiter itself. Both
// locks go with their process: a waiter that dies leaves no mark.
const (
	keepTurn  = 5 * time.Millisecond
	yieldMax  = 20 * time.Millisecond
	yieldPoll = 200 * time.Microsecond
)

// WaitFile is the marker file of the database at path.
func WaitFile(path string) string { return path + ".wait" }

// waitMark is this process's descriptor of the marker file (shared, like
// keeper, by every Bolt on the file). It is opened on first use; a marker
// that cannot be opened (a read-only directory) means no turns: each
// process then takes the file as it comes, as before.
type waitMark struct {
	path   string
	mu     sync.Mutex
	f      *os.File
	opened bool
	// marks counts this process's waits in progress: the first takes the
	// shared lock, the last releases it.
	marks int
}

// file returns the marker's descriptor, nil if it cannot be had; mu is
// held.
func (m *waitMark) file() *os.File {
	if !m.opened {
		m.opened = true
		if f, err := os.OpenFile(WaitFile(m.path), os.O_RDWR|os.O_CREATE, 0o600); err == nil {
			m.f = f
		}
	}
	return m.f
}

// mark says that this process waits for the file, until unmark is called.
func (m *waitMark) mark() (unmark func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.file()
	if f == nil {
		return func() {}
	}
	if m.marks == 0 {
		lockShared(f)
	}
	m.marks++
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.marks--; m.marks == 0 {
			unlock(f)
		}
	}
}

// others reports whether another process waits for the file. A process
// that waits itself does not hold it (and its own lock would hide
// theirs).
func (m *waitMark) others() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.file()
	if f == nil || m.marks > 0 {
		return false
	}
	free, err := tryLock(f)
	if err != nil {
		return false
	}
	if free {
		unlock(f)
	}
	return !free
}

// yield waits until no other process waits for the file (the one that did
// has it now), at most yieldMax.
func (m *waitMark) yield(ctx context.Context) {
	end := time.Now().Add(yieldMax)
	for m.others() && time.Now().Before(end) && ctx.Err() == nil {
		time.Sleep(yieldPoll)
	}
}
