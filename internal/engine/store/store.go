// Package store is the cluster database: a small key-value contract with
// revisions, shaped so the embedded bbolt implementation and a later etcd one
// satisfy it alike and callers never change.
//
// Every key carries the revision of its last write (ModRevision). The store
// keeps one global revision counter that grows by one per successful Commit,
// as etcd does. A Commit applies all of its operations atomically and durably
// only if every comparison holds; otherwise nothing is written and it
// returns ErrConflict. That is how callers avoid lost updates: read, decide,
// then commit with a comparison on the revision they read.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors. Implementations wrap them with detail; test with errors.Is.
var (
	// ErrNotFound: the key does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a comparison of a Commit failed; nothing was written.
	ErrConflict = errors.New("conflict: the record changed since it was read")
	// ErrLockTimeout: the database stayed busy longer than the lock timeout.
	ErrLockTimeout = errors.New("timed out waiting for the cluster database")
	// ErrInvalid: a malformed key or operation.
	ErrInvalid = errors.New("invalid input")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store closed")
	// ErrLeaseNotFound: the lease expired, was revoked or never existed.
	ErrLeaseNotFound = errors.New("lease not found or expired")
	// ErrUnavailable: the database (etcd) could not be reached in time.
	ErrUnavailable = errors.New("cluster database unavailable")
	// ErrCorrupt: the database file failed a check (see CorruptError).
	ErrCorrupt = errors.New("cluster database damaged")
)

// KV is one stored record.
type KV struct {
	Key   string
	Value []byte
	// ModRevision is the store revision of the Commit that last wrote Key.
	ModRevision int64
	// CreateRevision is the store revision of the Commit that created Key.
	CreateRevision int64
}

// Exists reports whether kv is a stored record rather than GetMany's
// placeholder for a missing key: every stored record has revisions of at
// least 1.
func (kv KV) Exists() bool { return kv.ModRevision != 0 }

// Cmp is a comparison a Commit checks before writing.
type Cmp struct {
	Key string
	// ModRevision the key must have; 0 means the key must not exist.
	ModRevision int64
}

// Op is a write within a Commit.
type Op struct {
	Key    string
	Value  []byte
	Delete bool
	// Lease, if not zero, attaches the key to that lease: the key vanishes
	// when the lease expires or is revoked. A put without a lease detaches
	// the key from any lease it had (as in etcd). The lease must be live,
	// else Commit fails with ErrLeaseNotFound.
	Lease LeaseID
}

// Put returns an Op that writes value at key.
func Put(key string, value []byte) Op { return Op{Key: key, Value: value} }

// PutLease returns an Op that writes value at key, attached to lease.
func PutLease(key string, value []byte, lease LeaseID) Op {
	return Op{Key: key, Value: value, Lease: lease}
}

// Del returns an Op that deletes key (deleting a missing key is no error).
func Del(key string) Op { return Op{Key: key, Delete: true} }

// Absent returns a Cmp that holds when key does not exist.
func Absent(key string) Cmp { return Cmp{Key: key} }

// At returns a Cmp that holds when key was last written at revision rev.
func At(key string, rev int64) Cmp { return Cmp{Key: key, ModRevision: rev} }

// Store is the cluster database.
type Store interface {
	// Get returns the record at key or an error wrapping ErrNotFound.
	Get(ctx context.Context, key string) (KV, error)
	// GetMany reads keys in one consistent snapshot (one etcd transaction,
	// one bbolt read transaction) and returns one KV per key, in the order
	// of keys (a key given twice comes back twice). A missing key is no
	// error: its KV is {Key: key} with zero revisions and a nil Value (see
	// KV.Exists). At most MaxGetMany keys; none returns nothing at once.
	GetMany(ctx context.Context, keys ...string) ([]KV, error)
	// List returns every record whose key starts with prefix, in key order,
	// and the store revision they were read at (one consistent snapshot).
	List(ctx context.Context, prefix string) ([]KV, int64, error)
	// Commit checks cmps and, if all hold, applies ops atomically and
	// durably as one new revision, which it returns. If any comparison
	// fails it writes nothing and returns an error wrapping ErrConflict.
	Commit(ctx context.Context, cmps []Cmp, ops []Op) (int64, error)
	// Close releases the store.
	Close() error
}

// LeaseID names a lease; 0 is no lease.
type LeaseID int64

// Leaser grants leases: the small part of etcd's lease API the engine
// needs. TTLs are whole seconds, rounded up, at least one second; a lease
// expires no earlier than its TTL after its grant or last renewal and, on
// etcd, up to about a second later. Close of a store does not revoke its
// leases: they expire, exactly as when the process crashed.
type Leaser interface {
	// Grant creates a lease that expires ttl from now unless renewed.
	Grant(ctx context.Context, ttl time.Duration) (LeaseID, error)
	// KeepAlive renews the lease for another TTL from now. It fails with
	// an error wrapping ErrLeaseNotFound when the lease already expired.
	KeepAlive(ctx context.Context, id LeaseID) error
	// Revoke ends the lease now and deletes every key attached to it.
	// Revoking an expired or unknown lease is no error.
	Revoke(ctx context.Context, id LeaseID) error
}

// LeaseSeconds is ttl in whole seconds as stores keep it: rounded up,
// at least 1.
func LeaseSeconds(ttl time.Duration) int64 {
	s := int64((ttl + time.Second - 1) / time.Second)
	return max(s, 1)
}

// WaitFunc is told, while an operation waits for the database held by
// another process, how long it has waited so far. It gets the operation's
// context, so the caller can log that it waits (and to whom) without the
// store depending on a logger.
type WaitFunc func(ctx context.Context, waited, limit time.Duration)
