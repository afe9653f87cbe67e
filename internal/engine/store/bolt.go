package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DefaultLockTimeout is how long an operation waits for the database file
// while another process holds it, unless BoltOptions.LockTimeout says.
const DefaultLockTimeout = 30 * time.Second

// BoltOptions tunes a Bolt store.
type BoltOptions struct {
	// LockTimeout bounds how long one operation waits for the database:
	// for the file while another process holds it, and for other
	// operations of this process. Zero means DefaultLockTimeout.
	LockTimeout time.Duration
	// OnWait, if set, is called when an operation starts waiting for the
	// file held by another process, then about once a second while it
	// still waits. It runs on the waiting goroutine; keep it quick.
	OnWait WaitFunc
	// NoSync skips fsync on commit. Only for tests: a crash of the machine
	// may lose or corrupt recent commits.
	NoSync bool
	// Existing says the file held a database: a missing or empty file is
	// an error wrapping ErrCorrupt instead of a new, empty database.
	Existing bool
}

// Bolt is the embedded Store: one bbolt file that several processes share.
//
// It holds the file only while this process uses it: an operation opens
// the file, taking its lock (shared for reads, exclusive for commits), or
// reuses the open the previous operation left, runs one transaction, and
// the file is closed once no operation came for a few milliseconds
// (bolt_keep.go). Within
// one process, commits run one at a time (and concurrent ones are written
// together: bolt_batch.go), and reads that arrive while another read or a
// commit of this process has the file open share that open (a session:
// bolt_share.go) instead of queueing for their own; a read never waits for
// a commit's fsync. A process that finds the
// file locked polls it (every 0.5-5 ms) until LockTimeout; there is no
// queue, so a process issuing operations back to back without pause can
// keep another one waiting until it pauses.
type Bolt struct {
	path string
	opts BoltOptions
	// sem admits one operation on the file of this process at a time (it
	// is shared by every Bolt on the same file): two flocks taken on two
	// descriptors of one process conflict like two processes.
	sem    chan struct{}
	closed atomic.Bool
	// exists: OpenBolt found or made the database; later opens never
	// create the file again (set before b is shared).
	exists bool
	// queue holds this process's commits waiting for the file (shared by
	// every Bolt on the same file), written together by group commit.
	queue *commitQueue
	// reads is the file's read session in this process (shared by every
	// Bolt on the same file).
	reads *readShare
	// keep is the file's open kept between operations (shared by every
	// Bolt on the same file).
	keep *keeper
	// inCommit, if set, runs inside each group commit's transaction
	// (tests: a slow commit).
	inCommit func()
}

// sems holds one semaphore per database file (absolute path) of the process.
var sems sync.Map

func semFor(path string) chan struct{} {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	sem, _ := sems.LoadOrStore(path, make(chan struct{}, 1))
	return sem.(chan struct{})
}

var (
	_ Store  = (*Bolt)(nil)
	_ Leaser = (*Bolt)(nil)
)

// Layout of the file. Bucket kv maps each key to a record: a 16-byte
// header (create revision, mod revision; big-endian uint64) then the value.
// Bucket meta holds the store revision ("rev", big-endian uint64) and the
// layout version ("version"), and the last lease ID granted ("lease").
// Leases, added to layout 1 without changing it: bucket leases maps a lease
// ID (big-endian uint64) to its expiry (Unix nanoseconds) and TTL
// (nanoseconds); bucket keylease maps each key attached to a lease to the
// lease ID. A key whose lease is missing or expired is invisible to reads;
// the next write transaction deletes it.
var (
	bucketKV       = []byte("kv")
	bucketMeta     = []byte("meta")
	bucketLeases   = []byte("leases")
	bucketKeyLease = []byte("keylease")
	keyRev         = []byte("rev")
	keyLastLease   = []byte("lease")
	keyVersion     = []byte("version")
	layoutV1       = []byte("1")
	headerBytes    = 16
)

// tryOnce as bbolt's lock timeout makes bolt.Open try the lock exactly once
// (bbolt tries before it checks the timeout); this store does its own
// waiting, with finer polling, OnWait and ctx.
const tryOnce = time.Nanosecond

// Polling while the file is held by another process: start at pollMin,
// double up to pollMax, with jitter so processes do not move in lockstep.
// A holder that lets a waiter in idles until the waiter's next try
// (bolt_turns.go), so the tries stay close: one is an open and a failed
// flock, some microseconds.
const (
	pollMin = 500 * time.Microsecond
	pollMax = time.Millisecond
)

// waitNotifyEvery spaces OnWait calls (a variable for tests).
var waitNotifyEvery = time.Second

// OpenBolt opens the store in the bbolt file at path, creating and
// initialising the file if it is missing or empty (its directory must
// exist). An existing file is checked first (checkMeta, then bbolt's full
// consistency check): a damaged one is an error wrapping ErrCorrupt. It
// does not keep the file open: Close only marks the store closed.
func OpenBolt(path string, opts BoltOptions) (*Bolt, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	b := newBolt(path, opts)
	// Every plugin process opens the store: an initialised file is only
	// read (a shared lock, no fsync); anything else goes on to the write.
	st, err := os.Stat(path)
	if opts.Existing && (err != nil || st.Size() == 0) {
		what := "is empty"
		if err != nil {
			what = fmt.Sprintf("cannot be read (%v)", err)
		}
		return nil, openError(path, corrupt(path, "the file %s, yet the database existed", what))
	}
	if err == nil && st.Size() > 0 {
		sum, err := b.verify(context.Background(), false)
		if err != nil {
			return nil, openError(path, err)
		}
		if sum.ready {
			b.exists = true
			return b, nil
		}
		if opts.Existing {
			return nil, openError(path, corrupt(path, "the file holds no kayo cluster database (no layout version), yet one existed"))
		}
	}
	err = b.do(context.Background(), true, func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			if tx.Bucket(bucketKV) != nil || firstKey(tx) != nil {
				return errors.New("not a kayo cluster database (unexpected buckets)")
			}
			var err error
			if meta, err = tx.CreateBucket(bucketMeta); err != nil {
				return err
			}
			if err := meta.Put(keyVersion, layoutV1); err != nil {
				return err
			}
			if err := meta.Put(keyRev, make([]byte, 8)); err != nil {
				return err
			}
		} else if v := meta.Get(keyVersion); !bytes.Equal(v, layoutV1) {
			return fmt.Errorf("cluster database layout version %q is not supported (want %q)", v, layoutV1)
		}
		_, err := tx.CreateBucketIfNotExists(bucketKV)
		return err
	})
	if err != nil {
		return nil, openError(path, err)
	}
	b.exists = true
	return b, nil
}

// newBolt returns a Bolt on path sharing the process's state of the file.
func newBolt(path string, opts BoltOptions) *Bolt {
	sem := semFor(path)
	return &Bolt{path: path, opts: opts, sem: sem, queue: queueFor(path), reads: shareFor(path), keep: keeperFor(path, sem)}
}

// openError says which file failed to open, once.
func openError(path string, err error) error {
	if strings.Contains(err.Error(), path) {
		return fmt.Errorf("store: %w", err)
	}
	return fmt.Errorf("store: open %s: %w", path, err)
}

// Path returns the database file.
func (b *Bolt) Path() string { return b.path }

// WaitPolicy returns the lock timeout and the wait callback, for callers
// that wait for other shared resources (volume mounts) the same way.
func (b *Bolt) WaitPolicy() (time.Duration, WaitFunc) { return b.opts.LockTimeout, b.opts.OnWait }

// Get implements Store.
func (b *Bolt) Get(ctx context.Context, key string) (KV, error) {
	if err := CheckKey(key); err != nil {
		return KV{}, err
	}
	var kv KV
	err := b.do(ctx, false, func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketKV)
		if bk == nil {
			return fmt.Errorf("key %q: %w", key, ErrNotFound)
		}
		v := bk.Get([]byte(key))
		if v == nil || !leaseLive(tx, []byte(key), time.Now()) {
			return fmt.Errorf("key %q: %w", key, ErrNotFound)
		}
		var err error
		kv, err = decode(key, v)
		return err
	})
	if err != nil {
		return KV{}, fmt.Errorf("store: get: %w", err)
	}
	return kv, nil
}

// GetMany implements Store: one read transaction (joining this process's
// read session like any read).
func (b *Bolt) GetMany(ctx context.Context, keys ...string) ([]KV, error) {
	if err := CheckKeys(keys); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, nil
	}
	kvs := make([]KV, len(keys))
	err := b.do(ctx, false, func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketKV)
		now := time.Now()
		for i, k := range keys {
			kvs[i] = KV{Key: k}
			if bk == nil {
				continue
			}
			v := bk.Get([]byte(k))
			if v == nil || !leaseLive(tx, []byte(k), now) {
				continue
			}
			var err error
			if kvs[i], err = decode(k, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: get many: %w", err)
	}
	return kvs, nil
}

// List implements Store.
func (b *Bolt) List(ctx context.Context, prefix string) ([]KV, int64, error) {
	if err := CheckPrefix(prefix); err != nil {
		return nil, 0, err
	}
	var (
		kvs []KV
		rev int64
	)
	err := b.do(ctx, false, func(tx *bolt.Tx) error {
		var err error
		if rev, err = readRev(tx.Bucket(bucketMeta)); err != nil {
			return err
		}
		bk := tx.Bucket(bucketKV)
		if bk == nil {
			return nil
		}
		p := []byte(prefix)
		c := bk.Cursor()
		now := time.Now()
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			if !leaseLive(tx, k, now) {
				continue
			}
			kv, err := decode(string(k), v)
			if err != nil {
				return err
			}
			kvs = append(kvs, kv)
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("store: list %q: %w", prefix, err)
	}
	return kvs, rev, nil
}

// Close implements Store. It makes later operations fail with ErrClosed,
// waits, at most the lock timeout, for an operation in progress and
// closes the file if it was kept open. Closing twice is no error.
func (b *Bolt) Close() error {
	b.closed.Store(true)
	t := time.NewTimer(b.opts.LockTimeout)
	defer t.Stop()
	select {
	case b.sem <- struct{}{}:
		b.keep.drop()
		<-b.sem
		return nil
	case <-t.C:
		return fmt.Errorf("store: close %s: %w: an operation still held the file after %s (lock timeout)",
			b.path, ErrLockTimeout, b.opts.LockTimeout)
	}
}

// Grant implements Leaser.
func (b *Bolt) Grant(ctx context.Context, ttl time.Duration) (LeaseID, error) {
	var id LeaseID
	err := b.do(ctx, true, func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		lb, _, err := leaseBuckets(tx)
		if err != nil {
			return err
		}
		var last int64
		if v := meta.Get(keyLastLease); len(v) == 8 {
			last = int64(binary.BigEndian.Uint64(v))
		}
		id = LeaseID(last + 1)
		if err := meta.Put(keyLastLease, leaseKey(id)); err != nil {
			return err
		}
		d := time.Duration(LeaseSeconds(ttl)) * time.Second
		return lb.Put(leaseKey(id), leaseValue(time.Now().Add(d), d))
	})
	if err != nil {
		return 0, fmt.Errorf("store: grant lease: %w", err)
	}
	return id, nil
}

// KeepAlive implements Leaser.
func (b *Bolt) KeepAlive(ctx context.Context, id LeaseID) error {
	err := b.do(ctx, true, func(tx *bolt.Tx) error {
		lb, _, err := leaseBuckets(tx)
		if err != nil {
			return err
		}
		now := time.Now()
		exp, ttl, ok := readLease(lb, id)
		if !ok || !now.Before(exp) {
			return ErrLeaseNotFound
		}
		return lb.Put(leaseKey(id), leaseValue(now.Add(ttl), ttl))
	})
	if err != nil {
		return fmt.Errorf("store: keep lease %d alive: %w", id, err)
	}
	return nil
}

// Revoke implements Leaser. Deleting the keys of a live lease takes a
// revision, as in etcd.
func (b *Bolt) Revoke(ctx context.Context, id LeaseID) error {
	err := b.do(ctx, true, func(tx *bolt.Tx) error {
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
		now := time.Now()
		exp, _, ok := readLease(lb, id)
		if !ok || !now.Before(exp) {
			return purgeExpired(bk, lb, kl, now)
		}
		if err := lb.Delete(leaseKey(id)); err != nil {
			return err
		}
		keys := keysOf(kl, map[LeaseID]bool{id: true})
		if len(keys) == 0 {
			return nil
		}
		if err := deleteKeys(bk, kl, keys); err != nil {
			return err
		}
		cur, err := readRev(meta)
		if err != nil {
			return err
		}
		var rb [8]byte
		binary.BigEndian.PutUint64(rb[:], uint64(cur+1))
		return meta.Put(keyRev, rb[:])
	})
	if err != nil {
		return fmt.Errorf("store: revoke lease %d: %w", id, err)
	}
	return nil
}

func leaseBuckets(tx *bolt.Tx) (leases, keyLease *bolt.Bucket, err error) {
	if leases, err = tx.CreateBucketIfNotExists(bucketLeases); err != nil {
		return nil, nil, err
	}
	if keyLease, err = tx.CreateBucketIfNotExists(bucketKeyLease); err != nil {
		return nil, nil, err
	}
	return leases, keyLease, nil
}

func leaseKey(id LeaseID) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], uint64(id))
	return k[:]
}

func leaseValue(expires time.Time, ttl time.Duration) []byte {
	v := make([]byte, 16)
	binary.BigEndian.PutUint64(v[0:8], uint64(expires.UnixNano()))
	binary.BigEndian.PutUint64(v[8:16], uint64(ttl))
	return v
}

func readLease(lb *bolt.Bucket, id LeaseID) (expires time.Time, ttl time.Duration, ok bool) {
	if lb == nil {
		return time.Time{}, 0, false
	}
	v := lb.Get(leaseKey(id))
	if len(v) != 16 {
		return time.Time{}, 0, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(v[0:8]))), time.Duration(binary.BigEndian.Uint64(v[8:16])), true
}

// leaseLive reports whether key is not attached to a missing or expired
// lease.
func leaseLive(tx *bolt.Tx, key []byte, now time.Time) bool {
	kl := tx.Bucket(bucketKeyLease)
	if kl == nil {
		return true
	}
	id := kl.Get(key)
	if id == nil {
		return true
	}
	if len(id) != 8 {
		return false
	}
	exp, _, ok := readLease(tx.Bucket(bucketLeases), LeaseID(binary.BigEndian.Uint64(id)))
	return ok && now.Before(exp)
}

// purgeExpired deletes expired leases and the keys attached to them. It
// takes no revision: those keys were invisible since their lease expired.
func purgeExpired(bk, lb, kl *bolt.Bucket, now time.Time) error {
	expired := map[LeaseID]bool{}
	c := lb.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) == 8 && len(v) == 16 && !now.Before(time.Unix(0, int64(binary.BigEndian.Uint64(v[0:8])))) {
			expired[LeaseID(binary.BigEndian.Uint64(k))] = true
		}
	}
	if len(expired) == 0 {
		return nil
	}
	for id := range expired {
		if err := lb.Delete(leaseKey(id)); err != nil {
			return err
		}
	}
	return deleteKeys(bk, kl, keysOf(kl, expired))
}

func keysOf(kl *bolt.Bucket, ids map[LeaseID]bool) [][]byte {
	var keys [][]byte
	c := kl.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(v) == 8 && ids[LeaseID(binary.BigEndian.Uint64(v))] {
			keys = append(keys, bytes.Clone(k))
		}
	}
	return keys
}

func deleteKeys(bk, kl *bolt.Bucket, keys [][]byte) error {
	for _, k := range keys {
		if err := kl.Delete(k); err != nil {
			return err
		}
		if err := bk.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func compare(bk *bolt.Bucket, c Cmp) error {
	v := bk.Get([]byte(c.Key))
	if c.ModRevision == 0 {
		if v != nil {
			mod := int64(-1)
			if len(v) >= headerBytes {
				mod = int64(binary.BigEndian.Uint64(v[8:16]))
			}
			return fmt.Errorf("key %q exists (mod revision %d), expected absent: %w", c.Key, mod, ErrConflict)
		}
		return nil
	}
	if v == nil {
		return fmt.Errorf("key %q does not exist, expected mod revision %d: %w", c.Key, c.ModRevision, ErrConflict)
	}
	kv, err := decode(c.Key, v)
	if err != nil {
		return err
	}
	if kv.ModRevision != c.ModRevision {
		return fmt.Errorf("key %q is at mod revision %d, expected %d: %w", c.Key, kv.ModRevision, c.ModRevision, ErrConflict)
	}
	return nil
}

// decode copies a record out of bbolt's memory map, which is unmapped when
// the file is closed.
func decode(key string, v []byte) (KV, error) {
	if len(v) < headerBytes {
		return KV{}, fmt.Errorf("key %q: corrupt record of %d bytes", key, len(v))
	}
	return KV{
		Key:            key,
		Value:          bytes.Clone(v[headerBytes:]),
		CreateRevision: int64(binary.BigEndian.Uint64(v[0:8])),
		ModRevision:    int64(binary.BigEndian.Uint64(v[8:16])),
	}, nil
}

func readRev(meta *bolt.Bucket) (int64, error) {
	if meta == nil {
		return 0, nil
	}
	v := meta.Get(keyRev)
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("corrupt store revision of %d bytes", len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

// do runs fn in one transaction on the file, opened read-only with a
// shared lock or read-write with an exclusive lock (or kept open so by
// the operation before: bolt_keep.go). A read joins this process's
// session on the file when it can (bolt_share.go). A panic or fault of
// bbolt inside fn is an error wrapping ErrCorrupt.
func (b *Bolt) do(ctx context.Context, write bool, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	start := time.Now()
	deadline := start.Add(b.opts.LockTimeout)
	if !write {
		for {
			h, avail := b.reads.join(ctx)
			if h != nil {
				broken, err := guard(b.path, func() error { return h.db.View(fn) })
				b.reads.leave(b, broken)
				return err
			}
			got, err := b.acquire(ctx, deadline, avail)
			if err != nil {
				return err
			}
			if got {
				break
			}
		}
	} else {
		b.reads.writers.Add(1)
		_, err := b.acquire(ctx, deadline, nil)
		b.reads.writers.Add(-1)
		if err != nil {
			return err
		}
	}
	if b.closed.Load() {
		<-b.sem
		return ErrClosed
	}
	if !write {
		b.reads.beginOpen()
	}
	h, err := b.take(ctx, write, start, deadline)
	if err != nil {
		if !write {
			b.reads.start(nil)
		}
		<-b.sem
		return err
	}
	if !write {
		b.reads.start(h)
		broken, err := guard(b.path, func() error { return h.db.View(fn) })
		b.reads.leave(b, broken)
		return err
	}
	b.reads.startWrite(h)
	broken, err := guard(b.path, func() error { return h.db.Update(fn) })
	b.reads.endWrite(b, err == nil, broken)
	return err
}

// acquire waits for this process's other operations, up to deadline:
// true once it holds sem, false when avail (nil: never) closed first, a
// session having started that a read may join.
func (b *Bolt) acquire(ctx context.Context, deadline time.Time, avail <-chan struct{}) (bool, error) {
	select {
	case b.sem <- struct{}{}:
		return true, nil
	default:
	}
	b.keep.waiting.Add(1)
	defer b.keep.waiting.Add(-1)
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case b.sem <- struct{}{}:
		return true, nil
	case <-avail:
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	case <-t.C:
		return false, fmt.Errorf("%w: %s stayed busy with other operations of this process; gave up after %s (lock timeout)",
			ErrLockTimeout, b.path, b.opts.LockTimeout)
	}
}

func firstKey(tx *bolt.Tx) []byte {
	k, _ := tx.Cursor().First()
	return k
}
