package store

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// readShare lets concurrent reads of one process share one open of the
// file (a session) instead of queueing for sem one by one. The operation
// that opens it holds sem for the session; the last member to leave hands
// the file back (Bolt.put) and releases sem.
//
// A read opens a read session; later reads join while it is younger than
// maxReadSession (or, while a writer of this process waits, younger than
// readJoinWithWriter). A session holds the file's lock, so it is kept
// short: a waiting writer is held up by at most readJoinWithWriter plus the
// reads in flight (and gathers more commits into its group commit
// meanwhile), and the age limit lets other processes' writers in between
// sessions.
//
// A write transaction opens a write session on its read-write handle:
// reads join it for as long as the transaction runs, whatever its age,
// and read through bbolt's read transactions beside the one writer, so a
// read never waits for a commit's fsync. They see the state before that
// commit, which has not returned yet; a commit that returned is seen by
// every read that starts after it (one bbolt handle, or a later open).
// Once the transaction ends the session is a read session like any other.
type readShare struct {
	mu      sync.Mutex
	h       *handle // open while readers > 0
	readers int     // members, the write transaction included
	// writing: the session's write transaction runs.
	writing bool
	// committed: a member committed (put records it for the sidecar).
	committed bool
	// broken: a member hit damage; the last one abandons h instead of
	// closing it.
	broken bool
	opened time.Time
	// opening is closed once the read holding sem has opened the file (or
	// failed to): reads arriving meanwhile wait for it and join.
	opening chan struct{}
	// avail, once made, is closed when a session starts: reads waiting
	// for sem wake up to join it.
	avail chan struct{}
	// writers counts operations of this process waiting to write.
	writers atomic.Int32
}

// maxReadSession bounds how long reads keep joining one read session;
// readJoinWithWriter, while a writer of this process waits.
const (
	maxReadSession     = 10 * time.Millisecond
	readJoinWithWriter = 2 * time.Millisecond
)

var shares sync.Map // absolute path -> *readShare

func shareFor(path string) *readShare {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	r, _ := shares.LoadOrStore(path, &readShare{})
	return r.(*readShare)
}

// join returns the open session's file, or nil when a read must open its
// own, with a channel closed when a session that it may join starts.
func (r *readShare) join(ctx context.Context) (*handle, <-chan struct{}) {
	r.mu.Lock()
	if r.h == nil && r.opening != nil {
		opening := r.opening
		r.mu.Unlock()
		select {
		case <-opening:
		case <-ctx.Done():
			return nil, nil
		}
		r.mu.Lock()
	}
	defer r.mu.Unlock()
	if r.h != nil && !r.broken {
		age := time.Since(r.opened)
		if r.writing || age < maxReadSession && (r.writers.Load() == 0 || age < readJoinWithWriter) {
			r.readers++
			return r.h, nil
		}
	}
	if r.avail == nil {
		r.avail = make(chan struct{})
	}
	return nil, r.avail
}

// beginOpen marks the file as being opened by a read holding sem.
func (r *readShare) beginOpen() {
	r.mu.Lock()
	r.opening = make(chan struct{})
	r.mu.Unlock()
}

// start makes h (nil: the open failed), opened by a read holding sem,
// the session's file, and lets the reads waiting for it join.
func (r *readShare) start(h *handle) {
	r.mu.Lock()
	if h != nil {
		r.h, r.readers, r.opened, r.broken, r.committed = h, 1, time.Now(), false, false
		r.wake()
	}
	close(r.opening)
	r.opening = nil
	r.mu.Unlock()
}

// startWrite makes h, taken read-write by an operation holding sem, the
// session's file while that operation's write transaction runs.
func (r *readShare) startWrite(h *handle) {
	r.mu.Lock()
	r.h, r.readers, r.opened, r.broken, r.committed, r.writing = h, 1, time.Now(), false, false, true
	r.wake()
	r.mu.Unlock()
}

// wake lets the reads waiting for sem join the session; r.mu is held.
func (r *readShare) wake() {
	if r.avail != nil {
		close(r.avail)
		r.avail = nil
	}
}

// endWrite ends the session's write transaction (committed: it
// committed; broken: it hit damage) as leave ends a read.
func (r *readShare) endWrite(b *Bolt, committed, broken bool) {
	r.mu.Lock()
	r.writing = false
	r.committed = r.committed || committed
	r.mu.Unlock()
	r.leave(b, broken)
}

// leave ends one member of b's session (broken: it hit damage); the last
// one hands the file back (Bolt.put) and releases sem.
func (r *readShare) leave(b *Bolt, broken bool) {
	r.mu.Lock()
	r.broken = r.broken || broken
	r.readers--
	if r.readers > 0 {
		r.mu.Unlock()
		return
	}
	h, broken, committed := r.h, r.broken, r.committed
	r.h, r.committed = nil, false
	r.mu.Unlock()
	b.put(h, committed, broken)
	<-b.sem
}
