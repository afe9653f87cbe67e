// Package memstore is an in-memory store.Store for tests of other packages.
// It keeps the same contract as the bbolt store (store/storetest checks
// both) but nothing survives the process.
package memstore

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// Store is an in-memory store.Store, safe for concurrent use.
type Store struct {
	mu     sync.Mutex
	rev    int64
	data   map[string]store.KV
	closed bool
}

var _ store.Store = (*Store)(nil)

// New returns an empty store at revision 0.
func New() *Store { return &Store{data: map[string]store.KV{}} }

func (s *Store) begin(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	return nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, key string) (store.KV, error) {
	if err := store.CheckKey(key); err != nil {
		return store.KV{}, err
	}
	if err := s.begin(ctx); err != nil {
		return store.KV{}, fmt.Errorf("store: get: %w", err)
	}
	defer s.mu.Unlock()
	kv, ok := s.data[key]
	if !ok {
		return store.KV{}, fmt.Errorf("store: get: key %q: %w", key, store.ErrNotFound)
	}
	return clone(kv), nil
}

// List implements store.Store.
func (s *Store) List(ctx context.Context, prefix string) ([]store.KV, int64, error) {
	if err := store.CheckPrefix(prefix); err != nil {
		return nil, 0, err
	}
	if err := s.begin(ctx); err != nil {
		return nil, 0, fmt.Errorf("store: list %q: %w", prefix, err)
	}
	defer s.mu.Unlock()
	var kvs []store.KV
	for k, kv := range s.data {
		if strings.HasPrefix(k, prefix) {
			kvs = append(kvs, clone(kv))
		}
	}
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].Key < kvs[j].Key })
	return kvs, s.rev, nil
}

// Commit implements store.Store.
func (s *Store) Commit(ctx context.Context, cmps []store.Cmp, ops []store.Op) (int64, error) {
	if err := store.CheckCommit(cmps, ops); err != nil {
		return 0, err
	}
	if err := s.begin(ctx); err != nil {
		return 0, fmt.Errorf("store: commit: %w", err)
	}
	defer s.mu.Unlock()
	for _, c := range cmps {
		kv, ok := s.data[c.Key]
		switch {
		case c.ModRevision == 0 && ok:
			return 0, fmt.Errorf("store: commit: key %q exists (mod revision %d), expected absent: %w", c.Key, kv.ModRevision, store.ErrConflict)
		case c.ModRevision != 0 && !ok:
			return 0, fmt.Errorf("store: commit: key %q does not exist, expected mod revision %d: %w", c.Key, c.ModRevision, store.ErrConflict)
		case c.ModRevision != 0 && kv.ModRevision != c.ModRevision:
			return 0, fmt.Errorf("store: commit: key %q is at mod revision %d, expected %d: %w", c.Key, kv.ModRevision, c.ModRevision, store.ErrConflict)
		}
	}
	s.rev++
	for _, op := range ops {
		if op.Delete {
			delete(s.data, op.Key)
			continue
		}
		create := s.rev
		if old, ok := s.data[op.Key]; ok {
			create = old.CreateRevision
		}
		s.data[op.Key] = store.KV{Key: op.Key, Value: bytes.Clone(nonNil(op.Value)), ModRevision: s.rev, CreateRevision: create}
	}
	return s.rev, nil
}

// Close implements store.Store. Later operations fail with
// store.ErrClosed; closing twice is no error.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

func clone(kv store.KV) store.KV {
	kv.Value = bytes.Clone(kv.Value)
	return kv
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
