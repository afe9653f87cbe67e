package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// hvBackend keeps the simulator's records in the cluster database.
//
// Within a VM operation (CreateVM, UpdateVM, DeleteVM, RefreshVM: the
// context carries an hvBuffer) the simulator's writes are not committed on
// their own: they wait in the buffer, reads see them, and the operation's
// next commit of the VM record carries them (vmCommit), compared against
// the VM record like the rest of that commit. So a VM operation commits
// once per state change, not once more per simulator record, and a process
// that lost the VM (its commit conflicts) never lands its simulator writes
// — the fence holds in the database itself. A crash before that commit
// loses them with the change they belong to; recovery works from the VM
// record (and the simulator records as of the last commit), as it does
// after a crash just before any other commit. Outside a VM operation
// (failover, kayoctl) writes commit at once.
type hvBackend struct{ st store.Store }

type hvBufferKey struct{}

// hvBuffer holds one VM operation's uncommitted simulator writes, by key
// (without hvPrefix); a nil value is a delete. raw holds other records
// that ride on the same commits, by full key: the volume reports of the
// operation's file work (volume_reports.go) and the completions of its
// node work done in this process (nodework.go).
type hvBuffer struct {
	mu     sync.Mutex
	writes map[string][]byte
	raw    map[string][]byte
	// seq counts writes, so a commit clears only what it carried.
	seq  uint64
	last map[string]uint64
}

// withHVBuffer returns ctx carrying a buffer for simulator writes (ctx
// itself if it carries one already).
func withHVBuffer(ctx context.Context) context.Context {
	if _, ok := ctx.Value(hvBufferKey{}).(*hvBuffer); ok {
		return ctx
	}
	return context.WithValue(ctx, hvBufferKey{}, &hvBuffer{writes: map[string][]byte{}, last: map[string]uint64{}})
}

func hvBufferOf(ctx context.Context) *hvBuffer {
	b, _ := ctx.Value(hvBufferKey{}).(*hvBuffer)
	return b
}

func (b *hvBuffer) put(key string, value []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	b.writes[key], b.last[key] = value, b.seq
}

// dropRaw forgets a buffered write of key outside the simulator's keys.
func (b *hvBuffer) dropRaw(key string) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.raw, key)
	delete(b.last, "\x00"+key)
}

// putRaw buffers a put (nil value: a delete) of a record outside the
// simulator's keys.
func (b *hvBuffer) putRaw(key string, value []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	if b.raw == nil {
		b.raw = map[string][]byte{}
	}
	b.raw[key], b.last["\x00"+key] = value, b.seq
}

func (b *hvBuffer) get(key string) (value []byte, deleted, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.writes[key]
	return v, ok && v == nil, ok
}

// pending returns the buffered writes as store ops (in key order) and the
// sequence they were taken at.
func (b *hvBuffer) pending() ([]store.Op, uint64) {
	if b == nil {
		return nil, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	keys := make([]string, 0, len(b.writes))
	for k := range b.writes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	ops := make([]store.Op, 0, len(keys)+len(b.raw))
	for _, k := range keys {
		if v := b.writes[k]; v == nil {
			ops = append(ops, store.Del(hvPrefix+k))
		} else {
			ops = append(ops, store.Put(hvPrefix+k, v))
		}
	}
	raw := make([]string, 0, len(b.raw))
	for k := range b.raw {
		raw = append(raw, k)
	}
	sort.Strings(raw)
	for _, k := range raw {
		if v := b.raw[k]; v == nil {
			ops = append(ops, store.Del(k))
		} else {
			ops = append(ops, store.Put(k, v))
		}
	}
	return ops, b.seq
}

// committed drops the writes a commit carried (those not rewritten since
// pending returned seq).
func (b *hvBuffer) committed(seq uint64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, s := range b.last {
		if s <= seq {
			if raw, ok := strings.CutPrefix(k, "\x00"); ok {
				delete(b.raw, raw)
			} else {
				delete(b.writes, k)
			}
			delete(b.last, k)
		}
	}
}

func (b hvBackend) Get(ctx context.Context, key string) ([]byte, error) {
	if buf := hvBufferOf(ctx); buf != nil {
		if v, deleted, ok := buf.get(key); ok {
			if deleted {
				return nil, fmt.Errorf("%s: %w", key, hypervisor.ErrNotFound)
			}
			return bytes.Clone(v), nil
		}
	}
	kv, err := b.st.Get(ctx, hvPrefix+key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%s: %w", key, hypervisor.ErrNotFound)
	}
	return kv.Value, err
}

func (b hvBackend) Put(ctx context.Context, key string, value []byte) error {
	if buf := hvBufferOf(ctx); buf != nil {
		buf.put(key, bytes.Clone(value))
		return nil
	}
	_, err := b.st.Commit(ctx, nil, []store.Op{store.Put(hvPrefix+key, value)})
	return err
}

func (b hvBackend) Delete(ctx context.Context, key string) error {
	if buf := hvBufferOf(ctx); buf != nil {
		buf.put(key, nil)
		return nil
	}
	_, err := b.st.Commit(ctx, nil, []store.Op{store.Del(hvPrefix + key)})
	return err
}

func (b hvBackend) List(ctx context.Context, prefix string) (map[string][]byte, error) {
	kvs, _, err := b.st.List(ctx, hvPrefix+prefix)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(kvs))
	for _, kv := range kvs {
		out[strings.TrimPrefix(kv.Key, hvPrefix)] = kv.Value
	}
	if buf := hvBufferOf(ctx); buf != nil {
		buf.mu.Lock()
		for k, v := range buf.writes {
			if !strings.HasPrefix(k, prefix) {
				continue
			}
			if v == nil {
				delete(out, k)
			} else {
				out[k] = bytes.Clone(v)
			}
		}
		buf.mu.Unlock()
	}
	return out, nil
}
