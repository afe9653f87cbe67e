package etcdlock

import (
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

// Lock caching: an unlocked key stays held in etcd (its mutex key under the
// mount's lease) until another mount's waiter key appears under it, which
// the mount's watch on the lock prefix sees. Mutual exclusion is etcd's
// mutex as before; caching only delays the release.

// maxCached bounds the keys kept without use (one etcd key each).
const maxCached = 1024

type cached struct {
	mu     *concurrency.Mutex
	refs   int  // holds of keys that map onto this lock
	wanted bool // another mount waits: release at the next idle moment
	since  time.Time
	idle   time.Time // when its last hold in this mount ended
	timer  *time.Timer
}

func (m *Locks) Lock(k kayofs.LockKey, excl bool) error {
	if err := m.Fenced(); err != nil {
		return err
	}
	k = m.lockOf(k)
	for {
		if m.reuse(k) {
			return nil
		}
		if !m.begin(k) {
			continue // another goroutine of this mount took it meanwhile
		}
		mu := concurrency.NewMutex(m.sess, m.lockKey(k))
		stop := m.watchHolder(k)
		err := mu.Lock(m.ctx)
		stop()
		if err != nil {
			m.end(k, nil)
			return m.failed(err)
		}
		m.end(k, mu)
		return nil
	}
}

func (m *Locks) TryLock(k kayofs.LockKey) (bool, error) {
	if err := m.Fenced(); err != nil {
		return false, err
	}
	k = m.lockOf(k)
	if m.reuse(k) {
		return true, nil
	}
	if !m.begin(k) {
		return m.reuse(k), nil
	}
	mu := concurrency.NewMutex(m.sess, m.lockKey(k))
	err := mu.TryLock(m.ctx)
	if err == concurrency.ErrLocked {
		m.end(k, nil)
		return false, nil
	}
	if err != nil {
		m.end(k, nil)
		return false, m.failed(err)
	}
	m.end(k, mu)
	return true, nil
}

// lockOf maps a Kayo FS key onto the etcd lock that guards it: the
// namespace's, a group's or a run of inodes' (kayofs.LockDomain) on a
// version-3 volume, else the one metadata lock (older binaries lock
// version-2 volumes so, and may mount them beside this one).
func (m *Locks) lockOf(k kayofs.LockKey) kayofs.LockKey {
	switch {
	case m.o.PerKey:
		return k
	case m.domains:
		return kayofs.LockDomain(k)
	}
	return metaKey
}

// metaKey: the one cluster-wide metadata lock when keys are not per key.
const metaKey kayofs.LockKey = -1

// begin claims the right to acquire k for this mount (false: a hold
// appeared or another acquisition is under way; retry with reuse).
func (m *Locks) begin(k kayofs.LockKey) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for m.taking[k] != nil {
		ch := m.taking[k]
		m.mu.Unlock()
		<-ch
		m.mu.Lock()
		if m.held[k] != nil {
			return false
		}
	}
	if m.held[k] != nil {
		return false
	}
	m.taking[k] = make(chan struct{})
	return true
}

// end finishes begin: stores the hold (mu non-nil) and wakes waiters.
func (m *Locks) end(k kayofs.LockKey, mu *concurrency.Mutex) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if mu != nil {
		m.held[k] = &cached{mu: mu, refs: 1, wanted: m.want[k], since: time.Now()}
		delete(m.want, k)
	}
	close(m.taking[k])
	delete(m.taking, k)
}

// reuse takes a cached hold of k.
func (m *Locks) reuse(k kayofs.LockKey) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for m.gone[k] != nil {
		done := m.gone[k]
		m.mu.Unlock()
		<-done
		m.mu.Lock()
	}
	c := m.held[k]
	if c == nil {
		return false
	}
	c.refs++
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	return true
}

// Unlock keeps k unless another mount waits for it (after MinHold) or the
// cache is full.
func (m *Locks) Unlock(k kayofs.LockKey, excl bool) {
	k = m.lockOf(k)
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.held[k]
	if c == nil {
		return
	}
	c.refs--
	if c.refs > 0 {
		return
	}
	c.idle = time.Now()
	if c.wanted || len(m.held) > maxCached {
		m.releaseLocked(k, c)
	}
}

// releaseLocked deletes k's mutex key once it is idle and held MinHold,
// or unused for MinHold/4: a mount done with its work hands over at once,
// one between two operations keeps its turn (caller holds m.mu).
func (m *Locks) releaseLocked(k kayofs.LockKey, c *cached) {
	if c.refs > 0 {
		return
	}
	if wait := min(m.o.MinHold-time.Since(c.since), m.o.MinHold/4-time.Since(c.idle)); wait > 0 {
		if c.timer == nil {
			c.timer = time.AfterFunc(wait, func() {
				m.mu.Lock()
				defer m.mu.Unlock()
				if m.held[k] == c {
					c.timer = nil
					m.releaseLocked(k, c)
				}
			})
		}
		return
	}
	// The mutex key is named by the lease, so a new hold of k by this
	// mount would reuse it: k is unusable here until the delete is done.
	delete(m.held, k)
	done := make(chan struct{})
	m.gone[k] = done
	mu := c.mu
	go func() {
		_ = mu.Unlock(m.cli.Ctx())
		m.mu.Lock()
		delete(m.gone, k)
		m.mu.Unlock()
		close(done)
	}()
}

// watchWaiters marks the keys other mounts start waiting for.
func (m *Locks) watchWaiters(rev int64) {
	defer close(m.watchDone)
	pfx := m.base + "/lock/"
	for wr := range m.cli.Watch(m.ctx, pfx, clientv3.WithPrefix(), clientv3.WithRev(rev), clientv3.WithFilterDelete()) {
		for _, ev := range wr.Events {
			if !ev.IsCreate() || clientv3.LeaseID(ev.Kv.Lease) == m.lease {
				continue
			}
			rest := strings.TrimPrefix(string(ev.Kv.Key), pfx)
			hex, _, ok := strings.Cut(rest, "/")
			if !ok {
				continue
			}
			k := metaKey
			if hex != "meta" {
				u, err := strconv.ParseUint(hex, 16, 64)
				if err != nil {
					continue
				}
				k = kayofs.LockKey(u)
			}
			m.mu.Lock()
			if c := m.held[k]; c != nil {
				c.wanted = true
				m.releaseLocked(k, c)
			} else if len(m.want) < maxCached {
				m.want[k] = true
			}
			m.mu.Unlock()
		}
	}
}

// Token is the fencing token of a held lock: its key's creation revision
// (a compare on it makes an etcd write conditional on still holding it).
func (m *Locks) Token(k kayofs.LockKey) (int64, bool) {
	k = m.lockOf(k)
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.held[k]; c != nil && c.mu.Header() != nil {
		return c.mu.Header().Revision, true
	}
	return 0, false
}
