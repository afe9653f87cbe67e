package store

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Watcher is a Store that tells of changes as they are committed, so a
// waiter is woken instead of polling: etcd's watch. The embedded database
// has none; its waiters poll (and are poked by a socket, nodework.go).
type Watcher interface {
	// Watch signals on the returned channel after records under prefix
	// changed, until ctx ends, then closes it. Signals coalesce (the
	// channel holds one): a signal says "read again", not what changed.
	// One signal comes at the start and after each re-established watch
	// (a changed connection), since changes may have been missed.
	Watch(ctx context.Context, prefix string) <-chan struct{}
}

var _ Watcher = (*Etcd)(nil)

// watchRetry is the pause before a watch that ended (connection lost,
// compaction) is made again.
const watchRetry = 100 * time.Millisecond

// Watch implements Watcher on etcd's watch of the prefix.
func (s *Etcd) Watch(ctx context.Context, prefix string) <-chan struct{} {
	ch := make(chan struct{}, 1)
	signal := func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	go func() {
		defer close(ch)
		for ctx.Err() == nil && !s.closed.Load() {
			wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
			wch := s.cli.Watch(wctx, s.prefix+prefix, clientv3.WithPrefix())
			signal()
			for wr := range wch {
				if wr.Canceled || wr.Err() != nil {
					break
				}
				if len(wr.Events) > 0 {
					signal()
				}
			}
			cancel()
			select {
			case <-ctx.Done():
			case <-time.After(watchRetry):
			}
		}
	}()
	return ch
}
