package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/record"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// Leader leases on store leases. The leader record stays at
// agents/<cluster>/leader (holder, term, for status and events); who holds
// it is the lock key agents/<cluster>/lock, whose value is the holder
// agent's ID, attached to a store lease that the holder keeps alive every
// tick. The lock vanishes when the lease expires by the store's clock (on
// etcd, the etcd leader's), so agents' clocks never decide who leads: a
// skewed agent can neither keep a lease it stopped renewing nor take one
// still renewed. Takeover: a commit that finds the lock absent, writes it
// and, for a new holder, the record with the next term. The lock's
// revision fences the leader's commits; it changes with every takeover.

// campaignLeased is campaign on store leases.
func (a *Agent) campaignLeased(ctx context.Context, cluster string) (bool, error) {
	e := a.e
	kvs, err := a.st.GetMany(ctx, leaseKey(cluster), lockKey(cluster))
	if err != nil {
		return false, err
	}
	rec, lock := kvs[0], kvs[1]
	var cur engine.Lease
	if rec.Exists() {
		if err := record.Decode(rec, &cur); err != nil {
			return false, err
		}
	}
	if lock.Exists() {
		if string(lock.Value) != a.cfg.ID || a.storeLease == 0 {
			a.resign()
			return false, nil // someone else leads
		}
		if err := a.leaser.KeepAlive(ctx, a.storeLease); err != nil {
			a.resign()
			if errors.Is(err, store.ErrLeaseNotFound) {
				return false, nil // it just expired: campaign afresh next tick
			}
			return false, err
		}
		a.cluster, a.term, a.leaseRev, a.fenceKey = cluster, cur.Term, lock.ModRevision, lockKey(cluster)
		return false, nil
	}
	if a.storeLease != 0 {
		if err := a.leaser.KeepAlive(ctx, a.storeLease); errors.Is(err, store.ErrLeaseNotFound) {
			a.storeLease = 0
		} else if err != nil {
			return false, err
		}
	}
	if a.storeLease == 0 {
		if a.storeLease, err = a.leaser.Grant(ctx, a.cfg.LeaseTTL); err != nil {
			return false, err
		}
	}
	now := e.Now().UTC()
	ttl := time.Duration(store.LeaseSeconds(a.cfg.LeaseTTL)) * time.Second
	cmps := []store.Cmp{store.Absent(lockKey(cluster)), store.Absent(leaseKey(cluster))}
	if rec.Exists() {
		cmps[1] = store.At(leaseKey(cluster), rec.ModRevision)
	}
	ops := []store.Op{store.PutLease(lockKey(cluster), []byte(a.cfg.ID), a.storeLease)}
	// Retaking its own lease (no one else took it meanwhile) keeps the term.
	mine := rec.Exists() && cur.Agent == a.cfg.ID
	next := cur
	if !mine {
		next = engine.Lease{Cluster: cluster, Holder: a.cfg.Node, Agent: a.cfg.ID, Term: cur.Term + 1,
			Acquired: now, Expires: now.Add(ttl), TTL: ttl}
		detail := map[string]string{"term": fmt.Sprint(next.Term), "agent": a.cfg.ID,
			"lease_ttl": ttl.String(), "lease": "store"}
		if cur.Holder != "" {
			detail["previous"] = cur.Holder
			detail["previous_term"] = fmt.Sprint(cur.Term)
			// Its store lease had ended by now (exactly when, only the
			// store's clock knows).
			detail["previous_expired"] = now.Format(time.RFC3339Nano)
		}
		ops = append(ops, record.Put(leaseKey(cluster), next),
			e.EventOp(engine.Event{Kind: engine.EventLeaderElected, Cluster: cluster, Subject: a.cfg.Node, Detail: detail}))
	}
	newRev, err := a.st.Commit(ctx, cmps, ops)
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrLeaseNotFound) {
		a.resign()
		return false, nil // another agent won this round, or the lease just expired
	}
	if err != nil {
		return false, err
	}
	a.cluster, a.term, a.leaseRev, a.fenceKey = cluster, next.Term, newRev, lockKey(cluster)
	return !mine, nil
}

// releaseLeased is Release on store leases: it deletes the lock with the
// released event, fenced by the lock, then revokes the store lease.
func (a *Agent) releaseLeased(ctx context.Context) error {
	e := a.e
	id, cluster, term, rev := a.storeLease, a.cluster, a.term, a.leaseRev
	a.resign()
	if id == 0 {
		return nil
	}
	if term > 0 {
		kv, err := a.st.Get(ctx, leaseKey(cluster))
		var l engine.Lease
		if err == nil {
			err = record.Decode(kv, &l)
		}
		if err == nil && l.Agent == a.cfg.ID {
			l.Expires = e.Now().UTC()
			_, err = a.st.Commit(ctx, []store.Cmp{store.At(lockKey(cluster), rev)}, []store.Op{
				store.Del(lockKey(cluster)),
				record.Put(leaseKey(cluster), l),
				e.EventOp(engine.Event{Kind: engine.EventLeaderReleased, Cluster: cluster, Subject: a.cfg.Node,
					Detail: map[string]string{"term": fmt.Sprint(term), "agent": a.cfg.ID}}),
			})
		}
		if err != nil && !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
			return err // the lease expires by itself
		}
	}
	return a.leaser.Revoke(ctx, id)
}

// defaultAliveTTL is the alive key's TTL while the node is in no cluster
// (none judges it then; a cluster it joins finds it alive).
const defaultAliveTTL = 10 * time.Second

// heartbeat writes the node's heartbeat record and, on store leases, its
// alive key on a lease renewed here, in one commit: a record marked Leased
// always came with its key.
func (a *Agent) heartbeat(ctx context.Context) error {
	e := a.e
	if a.leaser == nil {
		_, err := e.Heartbeat(ctx, a.cfg.Node, a.cfg.ID, a.seq)
		return err
	}
	if a.aliveTTL == 0 {
		a.aliveTTL = defaultAliveTTL
	}
	if a.aliveLease != 0 {
		if err := a.leaser.KeepAlive(ctx, a.aliveLease); errors.Is(err, store.ErrLeaseNotFound) {
			a.aliveLease = 0 // expired (the agent was paused): the node may be down now
		} else if err != nil {
			return err
		}
	}
	if a.aliveLease == 0 {
		id, err := a.leaser.Grant(ctx, a.aliveTTL)
		if err != nil {
			return err
		}
		a.aliveLease = id
	}
	hb := engine.Heartbeat{Node: a.cfg.Node, Time: e.Now().UTC(), Agent: a.cfg.ID, Seq: a.seq, Leased: true}
	_, err := a.st.Commit(ctx, nil, []store.Op{record.Put(heartbeatKey(a.cfg.Node), hb),
		store.PutLease(aliveKey(a.cfg.Node), []byte(a.cfg.ID), a.aliveLease)})
	if errors.Is(err, store.ErrLeaseNotFound) {
		a.aliveLease = 0 // expired between renewal and commit: next tick
	}
	return err
}

// tuneAlive makes the alive key's TTL the heartbeat timeout of the node's
// cluster, writing it at once on a new lease when the TTL changes.
func (a *Agent) tuneAlive(ctx context.Context, cluster string) error {
	if a.leaser == nil {
		return nil
	}
	ttl := defaultAliveTTL
	if cluster != "" {
		c, err := a.e.GetCluster(ctx, cluster)
		switch {
		case errors.Is(err, engine.ErrNotFound):
			// Destroyed since the host was read: no timeout to keep.
		case err != nil:
			return err
		default:
			ttl = time.Duration(max(c.HeartbeatTimeoutSeconds, 1)) * time.Second
		}
	}
	if ttl == a.aliveTTL {
		return nil
	}
	// The old lease expires by itself, with nothing attached: the put
	// below moves the key to the new one.
	a.aliveTTL, a.aliveLease = ttl, 0
	return a.heartbeat(ctx)
}

// heartbeatKey and aliveKey are node's heartbeat keys (engine.HeartbeatKeys).
func heartbeatKey(node string) string { k, _ := engine.HeartbeatKeys(node); return k }
func aliveKey(node string) string     { _, k := engine.HeartbeatKeys(node); return k }
