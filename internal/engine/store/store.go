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
}

// Put returns an Op that writes value at key.
func Put(key string, value []byte) Op { return Op{Key: key, Value: value} }

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

// WaitFunc is told, while an operation waits for the database held by
// another process, how long it has waited so far. It gets the operation's
// context, so the caller can log that it waits (and to whom) without the
// store depending on a logger.
type WaitFunc func(ctx context.Context, waited, limit time.Duration)
