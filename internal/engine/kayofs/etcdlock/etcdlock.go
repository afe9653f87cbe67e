// Package etcdlock is the Kayo FS lock manager for clusters whose database
// is etcd: every Kayo FS lock key is an etcd mutex (concurrency.Mutex)
// under the mount's etcd lease, a slot's owner is a key under that lease,
// and a mount whose lease it could not keep alive in time fences itself.
//
// Keys: PREFIX/VOLUME-UUID/lock/DOMAIN on a version-3 volume (the
// namespace, each allocation group, each run of inodes:
// kayofs.LockDomain), lock/meta on older ones, lock/KEY with
// Options.PerKey; .../recover/SLOT, .../owner/SLOT.
// Shared holds are taken exclusive (one hold per key and mount: the mount's
// in-process layer counts its own shared holds, kayofs/lock.go). A mount
// keeps a lock after its last unlock until another mount waits for it
// (a DLM's lock caching; cache.go), so a node working alone pays etcd
// round trips only for keys it never held.
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
	// MinHold: a lock another mount asks for is kept at least this long
	// after it was taken (default kayofs.DefaultMinHold, whose reasons
	// hold here too: a hand-over is a delete, a watch event and a grant,
	// round trips that a 20 ms turn did not pay for), so nodes taking
	// turns each get a run of operations per round trip.
	MinHold time.Duration
	Logf    func(format string, args ...any)
	// PerKey gives every Kayo FS lock key its own etcd lock; by default
	// they all map onto one metadata lock per volume (as the on-disk
	// leases do): fewer round trips, one handoff per turn between nodes.
	PerKey bool
	// OnEvent receives kayofs.LeaseFenced when this mount fences itself
	// and kayofs.LeaseRecoveryWait when it waits for a lock whose holder
	// stopped renewing its lease (kayofs/events.go); it must return at once.
	OnEvent func(kayofs.LeaseEvent)
}

// Locks is one mount's etcd lock manager.
type Locks struct {
	o     Options
	cli   *clientv3.Client
	sess  *concurrency.Session
	lease clientv3.LeaseID
	base  string
	node  string
	// domains: the volume is locked by domain (format version 3,
	// kayofs.LockDomain), not as one metadata lock.
	domains bool
	ctx     context.Context
	cancel  context.CancelFunc
	epoch   time.Time

	lastRenew atomic.Int64 // since epoch: when the last successful renewal was sent
	fenceMu   sync.Mutex
	fenced    error

	mu         sync.Mutex
	held       map[kayofs.LockKey]*cached       // lock keys this mount holds or keeps (cache.go)
	want       map[kayofs.LockKey]bool          // keys another mount waits for, not (yet) held here
	gone       map[kayofs.LockKey]chan struct{} // keys whose release is under way
	taking     map[kayofs.LockKey]chan struct{} // keys this mount is acquiring
	recov      map[int]*concurrency.Mutex
	waited     map[clientv3.LeaseID]bool   // silent holders reported (wait.go)
	owners     map[string]clientv3.LeaseID // slot owner keys as last seen (watchOwners)
	ownersDone chan struct{}
	done       chan struct{}
	watchDone  chan struct{}
	closed     sync.Once
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
	if o.MinHold <= 0 {
		o.MinHold = kayofs.DefaultMinHold
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
		node: node, domains: sb.LockDomains(), ctx: ctx, cancel: cancel, epoch: start, held: map[kayofs.LockKey]*cached{},
		want: map[kayofs.LockKey]bool{}, gone: map[kayofs.LockKey]chan struct{}{}, taking: map[kayofs.LockKey]chan struct{}{},
		recov: map[int]*concurrency.Mutex{}, waited: map[clientv3.LeaseID]bool{}, owners: map[string]clientv3.LeaseID{}, done: make(chan struct{})}
	or, err := o.Client.Get(ctx, m.base+"/owner/", clientv3.WithPrefix())
	if err != nil {
		cancel()
		return nil, err
	}
	for _, kv := range or.Kvs {
		m.owners[string(kv.Key)] = clientv3.LeaseID(kv.Lease)
	}
	go m.renewLoop()
	m.watchDone, m.ownersDone = make(chan struct{}), make(chan struct{})
	go m.watchWaiters(g.Revision + 1)
	go m.watchOwners(or.Header.Revision + 1)
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
	if m.fenced != nil {
		m.fenceMu.Unlock()
		return
	}
	m.fenced = fmt.Errorf("%w (node %s, etcd lease %x: %s)", kayofs.ErrFenced, m.node, int64(m.lease), why)
	m.fenceMu.Unlock()
	m.o.Logf("kayofs: node %s fenced itself: %s; every write to the volume now fails until it is mounted again", m.node, why)
	m.cancel() // waits for locks end
	if m.o.OnEvent != nil {
		m.o.OnEvent(kayofs.LeaseEvent{Kind: kayofs.LeaseFenced, Node: m.node, Slot: -1, Lease: m.o.TTL, Margin: m.o.Margin, Why: why})
	}
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

func (m *Locks) lockKey(k kayofs.LockKey) string {
	if k == metaKey {
		return m.base + "/lock/meta"
	}
	return fmt.Sprintf("%s/lock/%x", m.base, uint64(k))
}
func (m *Locks) ownerKey(s int) string   { return fmt.Sprintf("%s/owner/%d", m.base, s) }
func (m *Locks) recoverKey(s int) string { return fmt.Sprintf("%s/recover/%d", m.base, s) }

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
	defer func() { _ = rm.Unlock(m.cli.Ctx()) }()
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
// when that lease expires), as the owners watch last saw it. A key created
// since may still be missing here: then BeginRecovery, which reads etcd
// under the slot's recovery mutex, finds it.
func (m *Locks) OwnerLive(s int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.owners[m.ownerKey(s)]
	return ok && l != m.lease
}

// watchOwners keeps m.owners current.
func (m *Locks) watchOwners(rev int64) {
	defer close(m.ownersDone)
	for wr := range m.cli.Watch(m.ctx, m.base+"/owner/", clientv3.WithPrefix(), clientv3.WithRev(rev)) {
		m.mu.Lock()
		for _, ev := range wr.Events {
			if ev.Type == clientv3.EventTypeDelete {
				delete(m.owners, string(ev.Kv.Key))
			} else {
				m.owners[string(ev.Kv.Key)] = clientv3.LeaseID(ev.Kv.Lease)
			}
		}
		m.mu.Unlock()
	}
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
		<-m.watchDone
		<-m.ownersDone
	})
	return err
}
