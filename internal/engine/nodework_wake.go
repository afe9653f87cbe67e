package engine

import (
	"context"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// Waking the two sides of node work (nodework.go) instead of polling them.
// An agent's executor is poked on its socket when a request is committed
// and its caller on the request's Notify socket when the result is; where
// the database tells of changes (etcd's watch, store.Watcher) both also
// watch the records, which reaches an agent on another machine, where no
// socket does. Polling stays, as the fallback of a lost wake-up, but
// slower: in the VM benchmark (bench/vm_test.go) 16 agents polling every
// 100 ms each read the embedded database ten times a second, taking the
// file's lock from the provider between its own commits.

// watchWake pokes on every change under prefix of st, when st tells of
// changes, until ctx ends. It reports whether it watches.
func watchWake(ctx context.Context, st store.Store, prefix string, poke func()) bool {
	w, ok := st.(store.Watcher)
	if !ok {
		return false
	}
	ch := w.Watch(ctx, prefix)
	go func() {
		for range ch {
			poke()
		}
	}()
	return true
}

// notifiedPoll is the first fallback poll of a node-work wait that the
// agent wakes on its Notify socket; it doubles to 50 ms. Unwoken, the
// poll starts at 2 ms: each poll is two reads of the database, which on
// the embedded one, shared with the agents' process, is an open of the
// file under its lock.
const notifiedPoll = 25 * time.Millisecond

// watchedPoll is the fallback poll of a node-work wait that the
// database's watch wakes (unwatched, the poll starts at 2 ms and doubles
// to 50 ms).
const watchedPoll = 100 * time.Millisecond

// signalWake sends on a coalescing wake channel.
func signalWake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
