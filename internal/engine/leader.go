package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// A cluster's leader: the node agent that holds its leader lease
// (internal/nodeagent: the campaign, the heartbeats) runs the leader's
// duties each tick through LeaderTick, whose decisions are the engine's
// (liveness, failover, drains, failback: pure functions of the committed
// state) and whose every commit compares the lease's fence
// (docs/ARCHITECTURE.md, "Leases and fencing tokens").

// Agent event kinds.
const (
	EventLeaderElected  = "agent.leader_elected"
	EventLeaderReleased = "agent.leader_released"
)

// Lease is a cluster's leader lease.
type Lease struct {
	Cluster string `json:"cluster"`
	// Holder is the node whose agent holds it; Agent the agent process.
	Holder string `json:"holder"`
	Agent  string `json:"agent"`
	// Term grows by one with every change of holder.
	Term     int64     `json:"term"`
	Acquired time.Time `json:"acquired"`
	Expires  time.Time `json:"expires"`
	// TTL is set when a store lease holds the record (its lock key):
	// then Expires is only when it was taken plus TTL, and Live says
	// whether the lock is held now.
	TTL      time.Duration `json:"ttl,omitempty"`
	Live     bool          `json:"-"`
	Revision int64         `json:"-"`
}

// Leader returns the lease of cluster (ErrNotFound when no agent ever led).
// Live says whether it is still held.
func (e *Engine) Leader(ctx context.Context, cluster string) (Lease, error) {
	kvs, err := e.st.GetMany(ctx, leaseKey(cluster), lockKey(cluster))
	if err != nil {
		return Lease{}, fmt.Errorf("leader of cluster %q: %w", cluster, err)
	}
	if !kvs[0].Exists() {
		return Lease{}, fmt.Errorf("leader of cluster %q: %w", cluster, ErrNotFound)
	}
	var l Lease
	if err := decode(kvs[0], &l); err != nil {
		return Lease{}, fmt.Errorf("leader of cluster %q: %w", cluster, err)
	}
	l.Revision = kvs[0].ModRevision
	if l.TTL == 0 {
		l.Live = e.now().Before(l.Expires)
		return l, nil
	}
	// Held under a store lease: the lock says, not the clock; a live
	// lease lasts at most TTL more.
	l.Live = kvs[1].Exists() && string(kvs[1].Value) == l.Agent
	if now := e.now().UTC(); l.Live {
		l.Expires = now.Add(l.TTL)
	} else if l.Expires.After(now) {
		l.Expires = now
	}
	return l, nil
}

// LeaderKeys are the keys of cluster's leader lease: its record (Lease)
// and the lock a store lease holds (store.Leaser).
func LeaderKeys(cluster string) (record, lock string) { return leaseKey(cluster), lockKey(cluster) }

// HeartbeatKeys are the keys of node's heartbeat: its record (Heartbeat)
// and its alive key, held on a store lease.
func HeartbeatKeys(node string) (record, alive string) { return heartbeatKey(node), aliveKey(node) }

// CheckHostName says why name is no valid host name (nil: it is).
func CheckHostName(name string) error { return checkHostName(name) }

// LeaderFence is who leads a cluster and the comparison that fences its
// commits: the revision of the lease's lock (or record) it read.
type LeaderFence struct {
	// Node and Agent hold the lease; Term is its term.
	Node  string
	Agent string
	Term  int64
	Fence store.Cmp
}

// LeaderReport says what one LeaderTick decided.
type LeaderReport struct {
	// Decisions are the node state changes committed.
	Decisions []LivenessDecision
	// Failbacks are the VMs failed back (failback.go).
	Failbacks []FailbackDecision
}

// LeaderTick runs the leader's duties over cluster: it judges the nodes'
// liveness, then fails over the VMs of failed nodes, finishes drains and
// fails VMs back, each commit fenced by l. A conflict while judging (the
// cluster changed meanwhile, or l's lease was taken: a stale leader) is
// returned as ErrConflict with nothing committed; the caller judges
// afresh next tick.
func (e *Engine) LeaderTick(ctx context.Context, cluster string, l LeaderFence) (LeaderReport, error) {
	var rep LeaderReport
	var err error
	rep.Decisions, err = e.judge(ctx, cluster, l)
	if err != nil {
		return rep, err
	}
	if err := e.reconcileFailover(ctx, cluster); err != nil {
		return rep, err
	}
	rep.Failbacks, err = e.lead(ctx, cluster, l)
	return rep, err
}

// lead runs the leader's VM duties after failover, fenced by the lease:
// finishing drains of nodes in maintenance, then failback.
func (e *Engine) lead(ctx context.Context, cluster string, l LeaderFence) ([]FailbackDecision, error) {
	c, err := e.GetCluster(ctx, cluster)
	if err != nil {
		return nil, err
	}
	fence := []store.Cmp{l.Fence}
	derr := e.reconcileDrains(ctx, c, fence)
	fb, ferr := e.reconcileFailback(ctx, c, fence, l.Term)
	return fb, errors.Join(derr, ferr)
}

// judge runs the failure detector over the cluster and commits its
// decisions, fenced by the lease.
func (e *Engine) judge(ctx context.Context, cluster string, l LeaderFence) ([]LivenessDecision, error) {
	c, err := e.GetCluster(ctx, cluster)
	if err != nil {
		return nil, err
	}
	hosts, err := e.hostMap(ctx)
	if err != nil {
		return nil, err
	}
	hbs, err := e.Heartbeats(ctx)
	if err != nil {
		return nil, err
	}
	alive, err := e.aliveNodes(ctx, c.Nodes)
	if err != nil {
		return nil, err
	}
	nodes := make([]NodeLiveness, 0, len(c.Nodes))
	for _, n := range c.Nodes {
		h, ok := hosts[n]
		if !ok {
			continue
		}
		nodes = append(nodes, NodeLiveness{Name: n, Down: h.Down, DownReason: h.DownReason,
			DownSince: h.DownSince, LastHeartbeat: hbs[n].Time, Leased: hbs[n].Leased, Alive: alive[n]})
	}
	timeout := time.Duration(c.HeartbeatTimeoutSeconds) * time.Second
	decisions := DecideLiveness(nodes, timeout, e.now())
	if len(decisions) == 0 {
		return nil, nil
	}
	changes := make([]HostChange, 0, len(decisions))
	for _, d := range decisions {
		ch := HostChange{Host: d.Node, Down: d.Down, Detail: map[string]string{
			"by": l.Node, "term": fmt.Sprint(l.Term), "agent": l.Agent,
			"silent_for": d.Silent.Round(time.Millisecond).String(), "heartbeat_timeout": timeout.String(),
			"last_heartbeat": hbs[d.Node].Time.Format(time.RFC3339Nano),
		}}
		if d.Down {
			ch.Reason = DownByHeartbeat
		}
		changes = append(changes, ch)
	}
	if err := e.applyHostChanges(ctx, cluster, changes, []store.Cmp{l.Fence}); err != nil {
		return nil, err
	}
	return decisions, nil
}

// aliveNodes reports which of nodes have their alive key.
func (e *Engine) aliveNodes(ctx context.Context, nodes []string) (map[string]bool, error) {
	keys := make([]string, len(nodes))
	for i, n := range nodes {
		keys[i] = aliveKey(n)
	}
	kvs, err := e.st.GetMany(ctx, keys...)
	if err != nil {
		return nil, err
	}
	alive := make(map[string]bool, len(nodes))
	for i, n := range nodes {
		alive[n] = kvs[i].Exists()
	}
	return alive, nil
}
