// Package record holds the cluster database's JSON records and the
// optimistic retry that both sides of the request/result protocols use:
// the engine (the control plane) and the node agents' executors
// (internal/nodeagent), which share the records but not the engine's
// internals (docs/ARCHITECTURE.md, "Rules every change keeps").
package record

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// MaxAttempts bounds optimistic retries of one state change.
const MaxAttempts = 20

// Retry runs fn until it does not return store.ErrConflict, backing off
// briefly. fn reads, decides and commits; a conflict means someone else
// committed in between, so it starts over from a fresh read.
func Retry(ctx context.Context, fn func() error) error {
	var err error
	for attempt := 0; attempt < MaxAttempts; attempt++ {
		if err = fn(); !errors.Is(err, store.ErrConflict) {
			return err
		}
		delay := time.Duration(1<<min(attempt, 6)) * time.Millisecond
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
	return fmt.Errorf("gave up after %d concurrent updates: %w", MaxAttempts, err)
}

// Get decodes the record at key into v and returns its revision
// (store.ErrNotFound when there is none).
func Get[T any](ctx context.Context, st store.Store, key string, v *T) (int64, error) {
	kv, err := st.Get(ctx, key)
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(kv.Value, v); err != nil {
		return 0, fmt.Errorf("record %q is corrupt: %w", key, err)
	}
	return kv.ModRevision, nil
}

// List decodes every record under prefix, with their revisions.
func List[T any](ctx context.Context, st store.Store, prefix string) ([]T, []int64, error) {
	kvs, _, err := st.List(ctx, prefix)
	if err != nil {
		return nil, nil, err
	}
	out := make([]T, 0, len(kvs))
	revs := make([]int64, 0, len(kvs))
	for _, kv := range kvs {
		var v T
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return nil, nil, fmt.Errorf("record %q is corrupt: %w", kv.Key, err)
		}
		out = append(out, v)
		revs = append(revs, kv.ModRevision)
	}
	return out, revs, nil
}

// Put is the write of v as the record at key. Records are plain structs:
// one that cannot be marshalled is a programming error.
func Put(key string, v any) store.Op {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("record: marshal %s: %v", key, err))
	}
	return store.Put(key, b)
}

// Decode decodes kv's record into v.
func Decode(kv store.KV, v any) error {
	if err := json.Unmarshal(kv.Value, v); err != nil {
		return fmt.Errorf("record %q is corrupt: %w", kv.Key, err)
	}
	return nil
}
