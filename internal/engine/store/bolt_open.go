package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// handle is one open of the database file.
type handle struct {
	db *bolt.DB
	// file is bbolt's descriptor: closing it releases the file's lock
	// when db must be abandoned.
	file *os.File
	// waited: another process held the file when it was opened.
	waited bool
}

// close closes the file. broken (bbolt panicked or faulted on it) abandons
// the bbolt handle instead: its mutexes may still be held, so its Close
// could block forever. Unlocking and closing the descriptor lets other
// operations in; the memory map leaks.
func (h *handle) close(broken bool) error {
	if broken {
		return abandon(h.file)
	}
	return h.db.Close()
}

func abandon(f *os.File) error {
	if f == nil {
		return nil
	}
	unlock(f)
	return f.Close()
}

// errEmptyFile: the file of a store that was open is now empty or gone.
var errEmptyFile = errors.New("the file is empty")

// open opens and locks the file, retrying while another process holds it,
// then checks its meta pages (checkMeta). A file bbolt cannot read is an
// error wrapping ErrCorrupt.
func (b *Bolt) open(ctx context.Context, write bool, start, deadline time.Time) (*handle, error) {
	return b.openWith(ctx, write, false, start, deadline)
}

// openWith is open; freelist loads the freelist while opening read-only,
// under guard (bbolt's consistency check would load it on a goroutine of
// its own).
func (b *Bolt) openWith(ctx context.Context, write, freelist bool, start, deadline time.Time) (*handle, error) {
	if write {
		// bbolt reads the freelist while it opens for writing, before
		// checkMeta could run: a truncated file would fault there. A
		// look without the lock (a meta page may be in the middle of a
		// commit of another process) that finds damage is confirmed
		// under a shared lock, which reads no page.
		if st, err := os.Stat(b.path); err == nil && st.Size() > 0 {
			if _, err := checkFile(b.path); errors.Is(err, ErrCorrupt) {
				h, err := b.openWith(ctx, false, false, start, deadline)
				if err != nil {
					return nil, err
				}
				_ = h.close(false)
			}
		}
	}
	poll := pollMin
	var notified time.Time
	waited := false
	// While it waits, the process says so (bolt_turns.go).
	unmark := func() {}
	defer func() { unmark() }()
	for {
		var file *os.File
		opts := &bolt.Options{Timeout: tryOnce, ReadOnly: !write, NoSync: b.opts.NoSync, PreLoadFreelist: freelist,
			OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
				if b.exists {
					// Once opened, the database is never made anew.
					flag &^= os.O_CREATE
				}
				f, err := os.OpenFile(name, flag, perm)
				if err != nil {
					return nil, err
				}
				if st, err := f.Stat(); err == nil && st.IsDir() {
					// Read-only opens of a directory succeed: not damage.
					_ = f.Close()
					return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EISDIR}
				} else if err == nil && st.Size() == 0 && (b.exists || !write) {
					_ = f.Close()
					return nil, errEmptyFile
				}
				file = f
				return f, nil
			}}
		var db *bolt.DB
		broken, err := guard(b.path, func() error {
			var err error
			db, err = bolt.Open(b.path, 0o600, opts)
			return err
		})
		if broken {
			_ = abandon(file)
			// bbolt reads pages while it opens (the freelist), before
			// checkMeta could run: say what checkMeta finds, if anything.
			if _, cerr := checkFile(b.path); cerr != nil {
				err = cerr
			}
			return nil, err
		}
		if err == nil {
			h := &handle{db: db, file: file, waited: waited}
			if err := h.check(b.path); err != nil {
				_ = h.close(false)
				return nil, err
			}
			return h, nil
		}
		if !errors.Is(err, berrors.ErrTimeout) {
			return nil, boltOpenError(b.path, err)
		}
		if !waited {
			unmark = b.keep.marks.mark()
		}
		waited = true
		now := time.Now()
		if !now.Before(deadline) {
			return nil, fmt.Errorf("%w: %s is held by another process; gave up after %s (lock timeout)",
				ErrLockTimeout, b.path, b.opts.LockTimeout)
		}
		if b.opts.OnWait != nil && (notified.IsZero() || now.Sub(notified) >= waitNotifyEvery) {
			b.opts.OnWait(ctx, now.Sub(start), b.opts.LockTimeout)
			notified = now
		}
		d := min(poll/2+rand.N(poll/2+1), time.Until(deadline))
		t := time.NewTimer(max(d, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		poll = min(poll*2, pollMax)
	}
}

// boltOpenError names the file once and says when bbolt refused it as
// not a valid database.
func boltOpenError(path string, err error) error {
	switch {
	case errors.Is(err, errEmptyFile):
		return corrupt(path, "the file is empty, yet the database existed")
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		return corrupt(path, "bbolt: %v", err)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return err
	}
	if strings.Contains(err.Error(), "file size too small") {
		return corrupt(path, "bbolt: %v", err)
	}
	return fmt.Errorf("open %s: %w", path, err)
}

// check runs checkMeta on the open file (the lock is held).
func (h *handle) check(path string) error {
	st, err := h.file.Stat()
	if err != nil {
		return err
	}
	_, err = checkMeta(path, h.file, st.Size())
	return err
}

// summary is what verify learns of a database file.
type summary struct {
	ready bool // it holds the store's layout
	rev   int64
	keys  int
}

// verify checks the file (OpenBolt, backups): meta pages, and unless it
// was left cleanly (bolt_clean.go; always when isCopy, a backup that is
// never marked) every page reachable from the root read under guard, then
// bbolt's consistency check.
func (b *Bolt) verify(ctx context.Context, isCopy bool) (sum summary, err error) {
	start := time.Now()
	deadline := start.Add(b.opts.LockTimeout)
	if _, err := b.acquire(ctx, deadline, nil); err != nil {
		return sum, err
	}
	defer func() { <-b.sem }()
	// The check opens the file its own way: a handle kept open by this
	// process would hold the lock against it.
	b.keep.drop()
	h, err := b.openWith(ctx, false, false, start, deadline)
	if err != nil {
		return sum, err
	}
	full := isCopy || !leftClean(h, b.path)
	if full {
		// Reopen, the meta pages checked, loading the freelist here
		// rather than in bbolt's check goroutine.
		_ = h.close(false)
		if h, err = b.openWith(ctx, false, true, start, deadline); err != nil {
			return sum, err
		}
	}
	broken, err := guard(b.path, func() error {
		return h.db.View(func(tx *bolt.Tx) error {
			if !full {
				return nil
			}
			if _, err := walk(tx); err != nil {
				return err
			}
			return checkTx(b.path, tx)
		})
	})
	if err == nil && full && !isCopy {
		markClean(h, b.path)
	}
	if err == nil {
		broken, err = guard(b.path, func() error {
			return h.db.View(func(tx *bolt.Tx) error {
				meta, kv := tx.Bucket(bucketMeta), tx.Bucket(bucketKV)
				sum.ready = meta != nil && bytes.Equal(meta.Get(keyVersion), layoutV1) && kv != nil
				if !sum.ready {
					return nil
				}
				if isCopy {
					sum.keys = kv.Stats().KeyN // reads every page of kv
				}
				var err error
				sum.rev, err = readRev(meta)
				return err
			})
		})
	}
	_ = h.close(broken)
	return sum, err
}

// walk reads every key and value of every bucket (on this goroutine,
// under guard) so that a page beyond the file faults here, where it is
// recovered, rather than in bbolt's check goroutine. The returned byte
// (of the bytes read) only keeps the reads from being optimised away.
func walk(tx *bolt.Tx) (byte, error) {
	var sum byte
	var visit func(b *bolt.Bucket) error
	visit = func(b *bolt.Bucket) error {
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			sum ^= k[0] ^ k[len(k)-1]
			if v == nil {
				if child := b.Bucket(k); child != nil {
					if err := visit(child); err != nil {
						return err
					}
				}
				continue
			}
			if len(v) > 0 {
				sum ^= v[0] ^ v[len(v)-1]
			}
		}
		return nil
	}
	err := tx.ForEach(func(name []byte, b *bolt.Bucket) error { return visit(b) })
	return sum, err
}
