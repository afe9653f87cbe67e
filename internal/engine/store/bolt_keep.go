package store

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Keeping the file open between operations. An open costs a lock, a
// memory map and the meta page checks, a close the unmap: in the VM
// benchmark (bench/vm_test.go) that was a fifth of the provider's CPU, paid
// once per Get, List and Commit. So the handle an operation opened stays
// open for the next operation of this process while operations keep
// coming, and is closed:
//
//   - once the file has been idle for keepIdle (another process, kayoctl or
//     an agent, then gets it within keepIdle of this one's last operation);
//     at once, unless another operation of this process waits for it, for
//     keepShared after this process last found the file held by another
//     one: processes that share the file busily (the provider beside node
//     agents on the embedded database) do not keep each other waiting;
//   - when it has been open for keepMax: a process issuing operations back
//     to back lets go of the file at least that often, as a process that
//     opened it per operation did between any two of them;
//   - when a commit needs the exclusive lock and it holds the shared one;
//   - when bbolt faulted on it (it is abandoned: handle.close);
//   - at Close, and before OpenBolt checks the file.
//
// Only the holder of sem uses it, as it used a fresh open. Durability does
// not change: each commit is its own bbolt transaction, fsync'd before it
// returns, whether the file stays open or not; a process that dies with
// the file open loses nothing committed, and its lock goes with it. The
// sidecar of bolt_clean.go is written when a handle that committed is
// closed, still under its lock: a process that dies with the file open
// leaves the sidecar behind the file, and the next OpenBolt checks the
// file in full, as after a crash between a commit and its record.
const (
	keepIdle   = 5 * time.Millisecond
	keepMax    = 100 * time.Millisecond
	keepShared = time.Second
)

// keeper is the file's kept handle in this process (shared by every Bolt
// on the same file, like sem). Its fields are read and written only while
// holding sem.
type keeper struct {
	path  string
	sem   chan struct{}
	h     *handle // nil when closed
	write bool    // h holds the exclusive lock
	// dirty: a commit on h is not yet recorded in the sidecar.
	dirty bool
	// shared: when an open last found the file held by another process.
	shared time.Time
	// waiting counts operations of this process waiting for sem (an
	// atomic: they wait without it).
	waiting atomic.Int32
	opened  time.Time
	used    time.Time // when the last operation on h ended
	timer   *time.Timer
	// opens counts the opens of the file, for tests.
	opens atomic.Int64
	// marks is the marker of processes waiting for the file
	// (bolt_turns.go).
	marks waitMark
}

var keepers sync.Map // absolute path -> *keeper

func keeperFor(path string, sem chan struct{}) *keeper {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	k, _ := keepers.LoadOrStore(path, &keeper{path: path, sem: sem, marks: waitMark{path: path}})
	return k.(*keeper)
}

// take returns a handle for an operation holding sem: the kept one when
// it serves the operation (a read-write handle serves reads too) and is
// younger than keepMax, else a fresh one, which is kept in its place. A
// handle held for keepTurn while another process waits for the file is
// let go first, and the other process let in (bolt_turns.go).
func (b *Bolt) take(ctx context.Context, write bool, start, deadline time.Time) (*handle, error) {
	k := b.keep
	if k.h != nil {
		age := time.Since(k.opened)
		turn := age >= keepTurn && k.marks.others()
		if !turn && (k.write || !write) && age < keepMax {
			return k.h, nil
		}
		k.drop()
		if turn {
			k.marks.yield(ctx)
		}
	}
	h, err := b.open(ctx, write, start, deadline)
	if err != nil {
		return nil, err
	}
	k.opens.Add(1)
	k.h, k.write, k.opened = h, write, time.Now()
	if h.waited {
		k.shared = k.opened
	}
	return h, nil
}

// put ends an operation on h, taken with take; the caller still holds
// sem. committed: the operation committed a transaction. broken (bbolt
// faulted on it) abandons h; else it stays open until the file is idle
// for keepIdle.
func (b *Bolt) put(h *handle, committed, broken bool) {
	k := b.keep
	if broken || k.h != h {
		_ = h.close(broken)
		if k.h == h {
			k.h, k.dirty = nil, false
		}
		return
	}
	k.dirty = k.dirty || committed
	k.used = time.Now()
	if k.used.Sub(k.shared) < keepShared && k.waiting.Load() == 0 {
		k.drop()
		return
	}
	if k.timer == nil {
		k.timer = time.AfterFunc(keepIdle, k.idle)
		return
	}
	k.timer.Reset(keepIdle)
}

// idle closes the kept handle once the file has been idle for keepIdle.
// It does not wait for sem: a holder of sem calls put when done, which
// sets the timer again.
func (k *keeper) idle() {
	select {
	case k.sem <- struct{}{}:
	default:
		return
	}
	defer func() { <-k.sem }()
	if k.h == nil {
		return
	}
	if wait := keepIdle - time.Since(k.used); wait > 0 {
		k.timer.Reset(wait)
		return
	}
	k.drop()
}

// drop closes the kept handle, if any, recording in the sidecar that the
// file was left cleanly if it committed; the caller holds sem. Results
// of reads are copied out (decode) and commits were synced, so a close
// error changes nothing.
func (k *keeper) drop() {
	if k.h == nil {
		return
	}
	if k.dirty {
		markClean(k.h, k.path)
	}
	_ = k.h.close(false)
	k.h, k.dirty = nil, false
}
