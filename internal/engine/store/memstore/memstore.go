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
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// Store is an in-memory store.Store and store.Leaser, safe for concurrent
// use.
type Store struct {
	mu     sync.Mutex
	rev    int64
	data   map[string]store.KV
	closed bool
	// Leases: expiry and TTL per live lease, the lease of each attached key.
	leases    map[store.LeaseID]lease
	keyLease  map[string]store.LeaseID
	lastLease store.LeaseID
	now       func() time.Time
}

type lease struct {
	expires time.Time
	ttl     time.Duration
}

var (
	_ store.Store  = (*Store)(nil)
	_ store.Leaser = (*Store)(nil)
)

// New returns an empty store at revision 0.
func New() *Store {
	return &Store{data: map[string]store.KV{}, leases: map[store.LeaseID]lease{},
		keyLease: map[string]store.LeaseID{}, now: time.Now}
}

// SetClock replaces the time source of lease expiry (tests).
func (s *Store) SetClock(now func() time.Time) {
	s.mu.Lock()
	s.now = now
	s.mu.Unlock()
}

// live reports whether key is visible: present and not attached to an
// expired lease.
func (s *Store) live(key string, now time.Time) (store.KV, bool) {
	kv, ok := s.data[key]
	if !ok {
		return kv, false
	}
	if id, ok := s.keyLease[key]; ok {
		if l, ok := s.leases[id]; !ok || !now.Before(l.expires) {
			return kv, false
		}
	}
	return kv, true
}

// purge drops expired leases and their keys. It takes no revision: the
// keys were invisible since their lease expired.
func (s *Store) purge(now time.Time) {
	for id, l := range s.leases {
		if !now.Before(l.expires) {
			delete(s.leases, id)
		}
	}
	for k, id := range s.keyLease {
		if _, ok := s.leases[id]; !ok {
			delete(s.keyLease, k)
			delete(s.data, k)
		}
	}
}

// Grant implements store.Leaser.
func (s *Store) Grant(ctx context.Context, ttl time.Duration) (store.LeaseID, error) {
	if err := s.begin(ctx); err != nil {
		return 0, fmt.Errorf("store: grant lease: %w", err)
	}
	defer s.mu.Unlock()
	s.lastLease++
	d := time.Duration(store.LeaseSeconds(ttl)) * time.Second
	s.leases[s.lastLease] = lease{expires: s.now().Add(d), ttl: d}
	return s.lastLease, nil
}

// KeepAlive implements store.Leaser.
func (s *Store) KeepAlive(ctx context.Context, id store.LeaseID) error {
	if err := s.begin(ctx); err != nil {
		return fmt.Errorf("store: keep lease %d alive: %w", id, err)
	}
	defer s.mu.Unlock()
	now := s.now()
	l, ok := s.leases[id]
	if !ok || !now.Before(l.expires) {
		return fmt.Errorf("store: keep lease %d alive: %w", id, store.ErrLeaseNotFound)
	}
	l.expires = now.Add(l.ttl)
	s.leases[id] = l
	return nil
}

// Revoke implements store.Leaser.
func (s *Store) Revoke(ctx context.Context, id store.LeaseID) error {
	if err := s.begin(ctx); err != nil {
		return fmt.Errorf("store: revoke lease %d: %w", id, err)
	}
	defer s.mu.Unlock()
	now := s.now()
	l, ok := s.leases[id]
	delete(s.leases, id)
	if !ok || !now.Before(l.expires) {
		s.purge(now)
		return nil
	}
	var keys []string
	for k, kid := range s.keyLease {
		if kid == id {
			keys = append(keys, k)
		}
	}
	if len(keys) > 0 {
		s.rev++ // like etcd: deleting the keys of a revoked lease is a revision
	}
	for _, k := range keys {
		delete(s.keyLease, k)
		delete(s.data, k)
	}
	return nil
}

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
	kv, ok := s.live(key, s.now())
	if !ok {
		return store.KV{}, fmt.Errorf("store: get: key %q: %w", key, store.ErrNotFound)
	}
	return clone(kv), nil
}

// GetMany implements store.Store.
func (s *Store) GetMany(ctx context.Context, keys ...string) ([]store.KV, error) {
	if err := store.CheckKeys(keys); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, nil
	}
	if err := s.begin(ctx); err != nil {
		return nil, fmt.Errorf("store: get many: %w", err)
	}
	defer s.mu.Unlock()
	now := s.now()
	kvs := make([]store.KV, len(keys))
	for i, k := range keys {
		kvs[i] = store.KV{Key: k}
		if kv, ok := s.live(k, now); ok {
			kvs[i] = clone(kv)
		}
	}
	return kvs, nil
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
	now := s.now()
	for k := range s.data {
		if kv, ok := s.live(k, now); ok && strings.HasPrefix(k, prefix) {
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
	now := s.now()
	s.purge(now)
	for _, op := range ops {
		if op.Lease != 0 {
			if _, ok := s.leases[op.Lease]; !ok {
				return 0, fmt.Errorf("store: commit: put %q with lease %d: %w", op.Key, op.Lease, store.ErrLeaseNotFound)
			}
		}
	}
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
		delete(s.keyLease, op.Key)
		if op.Delete {
			delete(s.data, op.Key)
			continue
		}
		if op.Lease != 0 {
			s.keyLease[op.Key] = op.Lease
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
