package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Group commit. Terraform applies up to ten resources at once, and each
// Commit is an fsync'd bbolt transaction holding the file exclusively, so
// commits of one process queue up. Instead of one transaction (and two
// fsyncs) each, the goroutine that gets the file writes every commit
// waiting at that moment in one transaction. Each commit keeps its own
// comparisons and its own revision, in queue order: a commit whose
// comparison fails is refused alone (ErrConflict) and the others land.

// commitReq is one Commit waiting to be written.
type commitReq struct {
	cmps []Cmp
	ops  []Op
	rev  int64
	err  error
	done chan struct{} // closed once rev/err are set
}

// commitQueue holds the commits of one database file in this process.
type commitQueue struct {
	mu      sync.Mutex
	pending []*commitReq
	batches int // transactions written, for tests
}

var queues sync.Map // absolute path -> *commitQueue

func queueFor(path string) *commitQueue {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	q, _ := queues.LoadOrStore(path, &commitQueue{})
	return q.(*commitQueue)
}

func (q *commitQueue) push(r *commitReq) {
	q.mu.Lock()
	q.pending = append(q.pending, r)
	q.mu.Unlock()
}

func (q *commitQueue) take() []*commitReq {
	q.mu.Lock()
	defer q.mu.Unlock()
	batch := q.pending
	q.pending = nil
	if len(batch) > 0 {
		q.batches++
	}
	return batch
}

// requeue puts rs back at the head of the queue, in order.
func (q *commitQueue) requeue(rs []*commitReq) {
	q.mu.Lock()
	q.pending = append(rs, q.pending...)
	q.mu.Unlock()
}

// remove withdraws r if no transaction has taken it yet.
func (q *commitQueue) remove(r *commitReq) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := slices.Index(q.pending, r)
	if i < 0 {
		return false
	}
	q.pending = slices.Delete(q.pending, i, i+1)
	return true
}

// Commit implements Store. It is synced to disk before it returns unless
// BoltOptions.NoSync.
func (b *Bolt) Commit(ctx context.Context, cmps []Cmp, ops []Op) (int64, error) {
	if err := CheckCommit(cmps, ops); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	req := &commitReq{cmps: cmps, ops: ops, done: make(chan struct{})}
	b.queue.push(req)
	start := time.Now()
	timer := time.NewTimer(b.opts.LockTimeout)
	defer timer.Stop()
	// While this commit waits, reads of this process stop joining the
	// read session that may hold the file (readShare).
	b.reads.writers.Add(1)
	b.keep.waiting.Add(1)
	waiting := true
	defer func() {
		if waiting {
			b.reads.writers.Add(-1)
			b.keep.waiting.Add(-1)
		}
	}()
	select {
	case <-req.done: // another goroutine's transaction wrote it
	case b.sem <- struct{}{}:
		b.reads.writers.Add(-1)
		b.keep.waiting.Add(-1)
		waiting = false
		// The file is ours (writeBatch lets it go): write everything
		// queued, this commit included unless an earlier transaction
		// already took it (then that one has ended, since it held the
		// file until then, and closes done right after).
		b.writeBatch(ctx, req, start, start.Add(b.opts.LockTimeout))
		<-req.done
	case <-ctx.Done():
		if b.queue.remove(req) {
			return 0, ctx.Err()
		}
		<-req.done // taken already: report what happened to it
	case <-timer.C:
		if b.queue.remove(req) {
			return 0, fmt.Errorf("store: commit: %w: %s stayed busy with other operations of this process; gave up after %s (lock timeout)",
				ErrLockTimeout, b.path, b.opts.LockTimeout)
		}
		<-req.done
	}
	if req.err != nil {
		return 0, fmt.Errorf("store: commit: %w", req.err)
	}
	return req.rev, nil
}

// writeBatch writes every queued commit in one transaction, in a write
// session that reads of this process join meanwhile (bolt_share.go). The
// caller holds b.sem, which writeBatch releases; own is the caller's
// commit.
func (b *Bolt) writeBatch(ctx context.Context, own *commitReq, start, deadline time.Time) {
	batch := b.queue.take()
	if len(batch) == 0 {
		<-b.sem
		return
	}
	session := false
	defer func() {
		if !session {
			<-b.sem
		}
		for _, r := range batch {
			close(r.done)
		}
	}()
	fail := func(err error) {
		for _, r := range batch {
			r.rev, r.err = 0, err
		}
	}
	if b.closed.Load() {
		fail(ErrClosed)
		return
	}
	h, err := b.take(ctx, true, start, deadline)
	if err != nil && ctx.Err() != nil {
		// This caller gave up waiting for the file; the others have not:
		// queue their commits again for the next goroutine to write.
		var others []*commitReq
		mine := false
		for _, r := range batch {
			if r == own {
				mine = true
			} else {
				others = append(others, r)
			}
		}
		b.queue.requeue(others)
		batch = nil
		if mine {
			batch = []*commitReq{own}
		}
	}
	if err != nil {
		fail(err)
		return
	}
	b.reads.startWrite(h)
	session = true
	broken, err := guard(b.path, func() error {
		return h.db.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists(bucketKV)
			if err != nil {
				return err
			}
			meta, err := tx.CreateBucketIfNotExists(bucketMeta)
			if err != nil {
				return err
			}
			lb, kl, err := leaseBuckets(tx)
			if err != nil {
				return err
			}
			if err := purgeExpired(bk, lb, kl, time.Now()); err != nil {
				return err
			}
			rev, err := readRev(meta)
			if err != nil {
				return err
			}
			for _, r := range batch {
				if r.err = checkLeases(lb, r.ops); r.err != nil {
					continue
				}
				if r.err = compareAll(bk, r.cmps); r.err != nil {
					continue
				}
				rev++
				if err := applyOps(bk, kl, r.ops, rev); err != nil {
					return err // the bucket is in an unknown state: abort all
				}
				r.rev = rev
			}
			if b.inCommit != nil {
				b.inCommit()
			}
			var rb [8]byte
			binary.BigEndian.PutUint64(rb[:], uint64(rev))
			return meta.Put(keyRev, rb[:])
		})
	})
	if err != nil {
		fail(err)
	}
	b.reads.endWrite(b, err == nil, broken)
}

func compareAll(bk *bolt.Bucket, cmps []Cmp) error {
	for _, c := range cmps {
		if err := compare(bk, c); err != nil {
			return err
		}
	}
	return nil
}

// checkLeases refuses puts under a lease that is not live (expired
// leases were purged before).
func checkLeases(lb *bolt.Bucket, ops []Op) error {
	for _, op := range ops {
		if op.Lease != 0 && lb.Get(leaseKey(op.Lease)) == nil {
			return fmt.Errorf("put %q with lease %d: %w", op.Key, op.Lease, ErrLeaseNotFound)
		}
	}
	return nil
}

// applyOps writes ops as revision rev, attaching or detaching leases in kl.
func applyOps(bk, kl *bolt.Bucket, ops []Op, rev int64) error {
	for _, op := range ops {
		k := []byte(op.Key)
		if err := kl.Delete(k); err != nil {
			return err
		}
		if op.Lease != 0 {
			if err := kl.Put(k, leaseKey(op.Lease)); err != nil {
				return err
			}
		}
		if op.Delete {
			if err := bk.Delete(k); err != nil {
				return fmt.Errorf("delete %q: %w", op.Key, err)
			}
			continue
		}
		create := rev
		if old := bk.Get(k); old != nil {
			kv, err := decode(op.Key, old)
			if err != nil {
				return err
			}
			create = kv.CreateRevision
		}
		rec := make([]byte, headerBytes+len(op.Value))
		binary.BigEndian.PutUint64(rec[0:8], uint64(create))
		binary.BigEndian.PutUint64(rec[8:16], uint64(rev))
		copy(rec[headerBytes:], op.Value)
		if err := bk.Put(k, rec); err != nil {
			return fmt.Errorf("put %q: %w", op.Key, err)
		}
	}
	return nil
}
