package hypervisor

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
)

// MemBackend is an in-memory Backend.
type MemBackend struct {
	mu sync.Mutex
	m  map[string][]byte
}

// NewMemBackend returns an empty MemBackend.
func NewMemBackend() *MemBackend { return &MemBackend{m: map[string][]byte{}} }

// Get implements Backend.
func (b *MemBackend) Get(_ context.Context, key string) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.m[key]
	if !ok {
		return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	return bytes.Clone(v), nil
}

// Put implements Backend.
func (b *MemBackend) Put(_ context.Context, key string, value []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.m[key] = bytes.Clone(value)
	return nil
}

// Delete implements Backend.
func (b *MemBackend) Delete(_ context.Context, key string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, key)
	return nil
}

// List implements Backend.
func (b *MemBackend) List(_ context.Context, prefix string) (map[string][]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string][]byte{}
	for k, v := range b.m {
		if strings.HasPrefix(k, prefix) {
			out[k] = bytes.Clone(v)
		}
	}
	return out, nil
}
