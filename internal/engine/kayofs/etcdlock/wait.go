package etcdlock

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

// A mount waiting for a lock whose holder stopped renewing its lease (a
// frozen or dead node) waits until etcd expires that lease: nothing here
// decides it, so the wait is reported as it is seen (kayofs/events.go,
// LeaseRecoveryWait, as the on-disk leases report theirs).

// watchHolder checks k's holder every TTL/4 while this mount waits for k;
// the returned func stops it.
func (m *Locks) watchHolder(k kayofs.LockKey) func() {
	if m.o.OnEvent == nil {
		return func() {}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(m.o.TTL / 4)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-m.ctx.Done():
				return
			case <-t.C:
			}
			m.noteSilentHolder(k)
		}
	}()
	return func() { close(stop); <-done }
}

// noteSilentHolder reports, once per lease, that k's holder has not renewed
// its etcd lease for half its TTL or more (a live mount renews every TTL/4):
// this mount gets k, and recovers the holder's slot, only when etcd expires
// that lease.
func (m *Locks) noteSilentHolder(k kayofs.LockKey) {
	r, err := m.cli.Get(m.ctx, m.lockKey(k)+"/", append(clientv3.WithFirstCreate(), clientv3.WithPrefix())...)
	if err != nil || len(r.Kvs) == 0 {
		return
	}
	holder := clientv3.LeaseID(r.Kvs[0].Lease)
	if holder == m.lease || holder == clientv3.NoLease {
		return
	}
	m.mu.Lock()
	seen := m.waited[holder]
	m.mu.Unlock()
	if seen {
		return
	}
	ttl, err := m.cli.TimeToLive(m.ctx, holder)
	if err != nil || ttl.TTL < 0 {
		return // expired meanwhile: the lock is about to be free
	}
	granted := time.Duration(ttl.GrantedTTL) * time.Second
	left := time.Duration(ttl.TTL) * time.Second // etcd rounds down to seconds
	silent := granted - left
	if silent < granted/2 {
		return
	}
	m.mu.Lock()
	m.waited[holder] = true
	m.mu.Unlock()
	peer, slot := fmt.Sprintf("etcd lease %x", int64(holder)), -1
	if or, err := m.cli.Get(m.ctx, m.base+"/owner/", clientv3.WithPrefix()); err == nil {
		for _, kv := range or.Kvs {
			if clientv3.LeaseID(kv.Lease) != holder {
				continue
			}
			if s, err := strconv.Atoi(strings.TrimPrefix(string(kv.Key), m.base+"/owner/")); err == nil {
				peer, slot = string(kv.Value), s
			}
		}
	}
	m.o.Logf("kayofs: node %s: %s (slot %d) has not renewed its etcd lease %x for about %v; waiting %v more for etcd to expire it before taking its locks and recovering its slot",
		m.node, peer, slot, int64(holder), silent, left)
	m.o.OnEvent(kayofs.LeaseEvent{Kind: kayofs.LeaseRecoveryWait, Node: m.node, Peer: peer, Slot: slot, Lease: granted, Wait: left,
		Why: fmt.Sprintf("etcd lease %x of %s unrenewed for about %v of its %v; etcd expires it in %v", int64(holder), peer, silent, granted, left)})
}

// Abandon stops renewing the mount's lease and keeps every key as it is:
// what a dead node leaves (kayofs Volume.Crash). etcd expires the lease
// after its TTL; only then may others take its locks and slot.
func (m *Locks) Abandon() {
	m.closed.Do(func() {
		m.cancel()
		<-m.done
		<-m.watchDone
		<-m.ownersDone
	})
}
