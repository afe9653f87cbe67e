// Package etcdlock is the Kayo FS lock manager for clusters whose database
// is etcd: every Kayo FS lock key is an etcd mutex (concurrency.Mutex)
// under the mount's etcd lease, a slot's owner is a key under that lease,
// and a mount whose lease it could not keep alive in time fences itself.
//
// Keys: PREFIX/VOLUME-UUID/lock/KEY, .../recover/SLOT, .../owner/SLOT.
// Shared holds are taken exclusive (one hold per key and mount: the mount's
// in-process layer counts its own shared holds, kayofs/lock.go).
//
// Fencing: the mount renews its lease itself (KeepAliveOnce every TTL/4)
// and counts a renewal from the moment it sent it; etcd expires the lease
// at the earliest TTL after that, and only then do the mount's lock keys
// vanish and others get its locks and recover its slot. The mount stops
// writing (Fenced) TTL−Margin after its last renewal, Margin before that.
// The lock keys' creation revisions are the fencing tokens etcd checks
// (Token): a LUN cannot check them, which is why the mount fences itself.
package etcdlock

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

// Options configure the etcd lock manager.
type Options struct {
	Client *clientv3.Client
	Prefix string        // default "/kayo/kayofs"
	TTL    time.Duration // the mount's lease; default 10s, at least 2s
	Margin time.Duration // fence this long before the lease can expire; default TTL/4
	Logf   func(format string, args ...any)
}

// Locks is one mount's etcd lock manager.
type Locks struct {
	o      Options
	cli    *clientv3.Client
	sess   *concurrency.Session
	lease  clientv3.LeaseID
	base   string
	node   string
	ctx    context.Context
	cancel context.CancelFunc
	epoch  time.Time

	lastRenew atomic.Int64 // since epoch: when the last successful renewal was sent
	fenceMu   sync.Mutex
	fenced    error

	mu     sync.Mutex
	held   map[kayofs.LockKey]*concurrency.Mutex
	recov  map[int]*concurrency.Mutex
	done   chan struct{}
	closed sync.Once
}

var _ kayofs.LockManager = (*Locks)(nil)

// New returns the factory of etcd lock managers.
func New(o Options) kayofs.LockManagerFactory {
	if o.Prefix == "" {
		o.Prefix = "/kayo/kayofs"
	}
	if o.TTL <= 0 {
		o.TTL = 10 * time.Second
	}
	o.TTL = max(o.TTL, 2*time.Second)
	if o.Margin <= 0 {
		o.Margin = o.TTL / 4
	}
	if o.Logf == nil {
		o.Logf = log.Printf
	}
	return func(dev kayofs.Device, node string) (kayofs.LockManager, error) { return open(dev, node, o) }
}

func open(dev kayofs.Device, node string, o Options) (*Locks, error) {
	if o.Client == nil {
		return nil, fmt.Errorf("%w: etcd lock manager without an etcd client", kayofs.ErrInvalid)
	}
	sb, err := kayofs.ReadSuperblock(dev)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	g, err := o.Client.Grant(ctx, int64(o.TTL/time.Second))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("kayofs: etcd lease for the mount's locks: %w", err)
	}
	sess, err := concurrency.NewSession(o.Client, concurrency.WithLease(g.ID), concurrency.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	m := &Locks{o: o, cli: o.Client, sess: sess, lease: g.ID, base: fmt.Sprintf("%s/%s", o.Prefix, sb.UUIDString()),
		node: node, ctx: ctx, cancel: cancel, epoch: start, held: map[kayofs.LockKey]*concurrency.Mutex{},
		recov: map[int]*concurrency.Mutex{}, done: make(chan struct{})}
	go m.renewLoop()
	return m, nil
}

func (m *Locks) now() int64 { return int64(time.Since(m.epoch)) }

func (m *Locks) renewLoop() {
	defer close(m.done)
	t := time.NewTicker(m.o.TTL / 4)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
		if m.Fenced() != nil {
			return
		}
		sent := m.now()
		ctx, cancel := context.WithTimeout(m.ctx, m.o.TTL/4)
		r, err := m.cli.KeepAliveOnce(ctx, m.lease)
		cancel()
		switch {
		case errors.Is(err, rpctypes.ErrLeaseNotFound) || (err == nil && r.TTL <= 0):
			m.fence("its etcd lease expired")
			return
		case err != nil:
			m.o.Logf("kayofs: node %s: renewing etcd lease %x: %v", m.node, int64(m.lease), err)
		default:
			m.lastRenew.Store(sent)
		}
	}
}

func (m *Locks) fence(why string) {
	m.fenceMu.Lock()
	defer m.fenceMu.Unlock()
	if m.fenced != nil {
		return
	}
	m.fenced = fmt.Errorf("%w (node %s, etcd lease %x: %s)", kayofs.ErrFenced, m.node, int64(m.lease), why)
	m.o.Logf("kayofs: node %s fenced itself: %s; every write to the volume now fails until it is mounted again", m.node, why)
	m.cancel() // waits for locks end
}

// Fenced: nil while the last renewal was sent less than TTL−Margin ago.
func (m *Locks) Fenced() error {
	if since := time.Duration(m.now() - m.lastRenew.Load()); since >= m.o.TTL-m.o.Margin {
		m.fence(fmt.Sprintf("etcd lease not renewed for %v (TTL %v, margin %v)", since.Round(time.Millisecond), m.o.TTL, m.o.Margin))
	}
	m.fenceMu.Lock()
	defer m.fenceMu.Unlock()
	return m.fenced
}

// failed turns an error that shows the lease is gone into fencing.
func (m *Locks) failed(err error) error {
	if errors.Is(err, rpctypes.ErrLeaseNotFound) || errors.Is(err, concurrency.ErrSessionExpired) {
		m.fence("its etcd lease is gone")
	}
	if f := m.Fenced(); f != nil {
		return fmt.Errorf("%w: %v", f, err)
	}
	return err
}

func (m *Locks) lockKey(k kayofs.LockKey) string { return fmt.Sprintf("%s/lock/%x", m.base, uint64(k)) }
func (m *Locks) ownerKey(s int) string           { return fmt.Sprintf("%s/owner/%d", m.base, s) }
func (m *Locks) recoverKey(s int) string         { return fmt.Sprintf("%s/recover/%d", m.base, s) }

func (m *Locks) Lock(k kayofs.LockKey, excl bool) error {
	if err := m.Fenced(); err != nil {
		return err
	}
	mu := concurrency.NewMutex(m.sess, m.lockKey(k))
	if err := mu.Lock(m.ctx); err != nil {
		return m.failed(fmt.Errorf("kayofs: etcd lock %s: %w", m.lockKey(k), err))
	}
	m.mu.Lock()
	m.held[k] = mu
	m.mu.Unlock()
	return nil
}

func (m *Locks) TryLock(k kayofs.LockKey) (bool, error) {
	if err := m.Fenced(); err != nil {
		return false, err
	}
	mu := concurrency.NewMutex(m.sess, m.lockKey(k))
	err := mu.TryLock(m.ctx)
	if errors.Is(err, concurrency.ErrLocked) {
		return false, nil
	}
	if err != nil {
		return false, m.failed(fmt.Errorf("kayofs: etcd lock %s: %w", m.lockKey(k), err))
	}
	m.mu.Lock()
	m.held[k] = mu
	m.mu.Unlock()
	return true, nil
}

func (m *Locks) Unlock(k kayofs.LockKey, excl bool) {
	m.mu.Lock()
	mu := m.held[k]
	delete(m.held, k)
	m.mu.Unlock()
	if mu != nil {
		_ = mu.Unlock(m.cli.Ctx())
	}
}

// Token is the fencing token of a held lock: its key's creation revision
// (a compare on it makes an etcd write conditional on still holding it).
func (m *Locks) Token(k kayofs.LockKey) (int64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if mu := m.held[k]; mu != nil && mu.Header() != nil {
		return mu.Header().Revision, true
	}
	return 0, false
}

// ClaimSlot puts s's owner key under the mount's lease if no live mount
// has it, under the slot's recovery mutex so no recovery runs meanwhile.
func (m *Locks) ClaimSlot(s int) (bool, error) {
	if err := m.Fenced(); err != nil {
		return false, err
	}
	rm := concurrency.NewMutex(m.sess, m.recoverKey(s))
	if err := rm.Lock(m.ctx); err != nil {
		return false, m.failed(err)
	}
	defer rm.Unlock(m.cli.Ctx())
	k := m.ownerKey(s)
	r, err := m.cli.Txn(m.ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, m.node, clientv3.WithLease(m.lease))).Commit()
	if err != nil {
		return false, err
	}
	return r.Succeeded, nil
}

func (m *Locks) ReleaseSlot(s int) {
	if m.Fenced() != nil {
		return
	}
	k := m.ownerKey(s)
	_, _ = m.cli.Txn(m.cli.Ctx()).If(clientv3.Compare(clientv3.LeaseValue(k), "=", m.lease)).Then(clientv3.OpDelete(k)).Commit()
}

// OwnerLive: s's owner key exists under another lease (etcd deletes it
// when that lease expires).
func (m *Locks) OwnerLive(s int) bool {
	r, err := m.cli.Get(m.ctx, m.ownerKey(s))
	if err != nil {
		return true
	}
	return len(r.Kvs) == 1 && clientv3.LeaseID(r.Kvs[0].Lease) != m.lease
}

func (m *Locks) BeginRecovery(s int) (bool, error) {
	if err := m.Fenced(); err != nil {
		return false, err
	}
	rm := concurrency.NewMutex(m.sess, m.recoverKey(s))
	if err := rm.Lock(m.ctx); err != nil {
		return false, m.failed(err)
	}
	r, err := m.cli.Get(m.ctx, m.ownerKey(s))
	if err != nil || len(r.Kvs) != 0 {
		_ = rm.Unlock(m.cli.Ctx())
		return false, err
	}
	m.mu.Lock()
	m.recov[s] = rm
	m.mu.Unlock()
	return true, nil
}

func (m *Locks) EndRecovery(s int) {
	m.mu.Lock()
	rm := m.recov[s]
	delete(m.recov, s)
	m.mu.Unlock()
	if rm != nil {
		_ = rm.Unlock(m.cli.Ctx())
	}
}

// Close revokes the mount's lease: its locks and slot key go at once.
func (m *Locks) Close() error {
	var err error
	m.closed.Do(func() {
		if m.Fenced() == nil {
			ctx, cancel := context.WithTimeout(context.Background(), m.o.TTL)
			_, err = m.cli.Revoke(ctx, m.lease)
			cancel()
		}
		m.cancel()
		<-m.done
	})
	return err
}
