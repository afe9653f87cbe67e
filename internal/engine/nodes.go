package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// Node liveness. Each node's agent writes a heartbeat record at
// nodes/<host>/heartbeat; the cluster's leader agent declares silent nodes
// down (and up again when their heartbeats return). On a store with leases
// the agent also keeps nodes/<host>/alive on a store lease whose TTL is
// the cluster's heartbeat_timeout_seconds, written in the same commit as a
// record marked Leased: such a node is silent when that key is gone, by
// the store's clock alone (internal/nodeagent/lease.go). Otherwise the leader compares
// the record's time with its own clock and the timeout. The lab marks nodes down and up
// by hand (kayoctl host fail / recover). Either way the change is one commit
// that also records the events: host.down / host.up, and quorum.lost /
// quorum.regained when the cluster's quorum changes with it.

// Why a node is down.
const (
	// DownByLab: kayoctl host fail. Only host recover brings it back.
	DownByLab = "lab"
	// DownByHeartbeat: silent past the heartbeat timeout. Its heartbeats
	// returning (or host recover) bring it back.
	DownByHeartbeat = "heartbeat"
)

// Node event kinds.
const (
	EventHostDown = "host.down"
	EventHostUp   = "host.up"
)

// Heartbeat is the last sign of life of a node's agent.
type Heartbeat struct {
	Node string    `json:"node"`
	Time time.Time `json:"time"`
	// Agent identifies the agent process (node, pid, random suffix).
	Agent string `json:"agent"`
	// Seq counts this agent's heartbeats.
	Seq int64 `json:"seq"`
	// Leased: written with the node's alive key on a store lease, which
	// says whether the node is silent.
	Leased bool `json:"leased,omitempty"`
}

// Heartbeat records that node's agent is alive now.
func (e *Engine) Heartbeat(ctx context.Context, node, agent string, seq int64) (Heartbeat, error) {
	hb := Heartbeat{Node: node, Time: e.now().UTC(), Agent: agent, Seq: seq}
	_, err := e.st.Commit(ctx, nil, []store.Op{putJSON(heartbeatKey(node), hb)})
	return hb, err
}

// Heartbeats returns the last heartbeat of every node that has one, by node.
func (e *Engine) Heartbeats(ctx context.Context) (map[string]Heartbeat, error) {
	kvs, _, err := e.st.List(ctx, nodesPrefix)
	if err != nil {
		return nil, err
	}
	out := map[string]Heartbeat{}
	for _, kv := range kvs {
		if !strings.HasSuffix(kv.Key, "/heartbeat") {
			continue // alive keys
		}
		var hb Heartbeat
		if err := decode(kv, &hb); err != nil {
			return nil, err
		}
		out[hb.Node] = hb
	}
	return out, nil
}

// NodeLiveness is what DecideLiveness judges a node on.
type NodeLiveness struct {
	Name       string
	Down       bool
	DownReason string
	DownSince  time.Time
	// LastHeartbeat is zero for a node whose agent never heartbeat: such a
	// node is not monitored and never declared down or up automatically.
	LastHeartbeat time.Time
	// Leased: the last heartbeat came with an alive key on a store lease;
	// Alive: that key is still there. Then Alive alone says whether the
	// node is silent, not LastHeartbeat against now.
	Leased, Alive bool
}

// LivenessDecision is a node to declare down or up.
type LivenessDecision struct {
	Node string
	Down bool
	// Silent is how long the node had been silent when judged.
	Silent time.Duration
}

// DecideLiveness is the pure failure detector: given each node's state and
// last heartbeat, the heartbeat timeout and now, it returns the nodes to
// declare down (up, monitored, silent for longer than timeout) and those to
// declare up again (down for DownByHeartbeat, with a heartbeat newer than
// when they went down and within timeout). Nodes the lab failed stay down;
// nodes that never heartbeat are left alone. Sorted by node name.
func DecideLiveness(nodes []NodeLiveness, timeout time.Duration, now time.Time) []LivenessDecision {
	var out []LivenessDecision
	for _, n := range nodes {
		if n.LastHeartbeat.IsZero() {
			continue
		}
		silent := now.Sub(n.LastHeartbeat)
		gone, back := silent > timeout, silent <= timeout && n.LastHeartbeat.After(n.DownSince)
		if n.Leased {
			// The store expired the key; an alive key present after a
			// down verdict was written after it.
			gone, back = !n.Alive, n.Alive
		}
		switch {
		case !n.Down && gone:
			out = append(out, LivenessDecision{Node: n.Name, Down: true, Silent: silent})
		case n.Down && n.DownReason == DownByHeartbeat && back:
			out = append(out, LivenessDecision{Node: n.Name, Down: false, Silent: silent})
		}
	}
	slices.SortFunc(out, func(a, b LivenessDecision) int { return strings.Compare(a.Node, b.Node) })
	return out
}

// HostChange is a node state change for applyHostChanges.
type HostChange struct {
	Host   string
	Down   bool
	Reason string            // DownByLab or DownByHeartbeat (for Down)
	Detail map[string]string // added to the event
}

// MarkHostDown declares a host down, as the lab's `kayoctl host fail`
// does (reason DownByLab). It reports false when the host was already down.
// The host's cluster may lose quorum: that is recorded, not refused.
func (e *Engine) MarkHostDown(ctx context.Context, name, reason string) (bool, error) {
	if reason == "" {
		reason = DownByLab
	}
	return e.markHost(ctx, HostChange{Host: name, Down: true, Reason: reason, Detail: map[string]string{"by": "kayoctl"}})
}

// MarkHostUp declares a host up again (`kayoctl host recover`). It reports
// false when the host was not down. A host whose agent's heartbeat is
// stale is declared down again by the leader agent.
func (e *Engine) MarkHostUp(ctx context.Context, name string) (bool, error) {
	return e.markHost(ctx, HostChange{Host: name, Down: false, Detail: map[string]string{"by": "kayoctl"}})
}

func (e *Engine) markHost(ctx context.Context, ch HostChange) (bool, error) {
	changed := false
	err := e.retry(ctx, func() error {
		h, err := e.GetHost(ctx, ch.Host)
		if err != nil {
			return err
		}
		if h.Down == ch.Down {
			changed = false
			return nil
		}
		changed = true
		return e.applyHostChanges(ctx, h.Cluster, []HostChange{ch}, nil)
	})
	if err != nil || !changed {
		return changed, err
	}
	h, err := e.GetHost(ctx, ch.Host)
	if err == nil && h.Cluster != "" {
		err = e.reconcileFailover(ctx, h.Cluster)
	}
	return true, err
}

// applyHostChanges commits changes to hosts of cluster (or of no cluster,
// cluster ""), with their events, the quorum event if the cluster's quorum
// changes, and extra comparisons (the leader's lease). Hosts already in the
// wanted state are skipped. It returns ErrConflict when anything it read
// changed; the caller retries.
func (e *Engine) applyHostChanges(ctx context.Context, cluster string, changes []HostChange, extra []store.Cmp) error {
	hosts, err := e.hostMap(ctx)
	if err != nil {
		return err
	}
	var c Cluster
	var before Quorum
	cmps := slices.Clone(extra)
	if cluster != "" {
		var qkv, lkv store.KV
		if c, qkv, lkv, err = e.readClusterRecs(ctx, cluster); err != nil {
			return err
		}
		var qc []store.Cmp
		if before, qc, err = e.quorumFrom(ctx, c, qkv, lkv, hosts); err != nil {
			return err
		}
		cmps = append(cmps, qc...)
		cmps = append(cmps, store.At(clusterKey(c.Name), c.Revision))
	}
	now := e.now().UTC()
	var ops []store.Op
	for _, ch := range changes {
		h, ok := hosts[ch.Host]
		if !ok {
			return fmt.Errorf("host %q: %w", ch.Host, ErrNotFound)
		}
		if h.Cluster != cluster {
			return fmt.Errorf("host %q is no longer a node of cluster %q: %w", ch.Host, cluster, ErrConflict)
		}
		if h.Down == ch.Down {
			continue
		}
		detail := map[string]string{}
		for k, v := range ch.Detail {
			detail[k] = v
		}
		kind := EventHostUp
		if ch.Down {
			kind = EventHostDown
			h.Down, h.DownReason, h.DownSince = true, ch.Reason, now
			detail["reason"] = ch.Reason
		} else {
			detail["was_down_for"] = now.Sub(h.DownSince).Round(time.Millisecond).String()
			detail["previous_reason"] = h.DownReason
			h.Down, h.DownReason, h.DownSince = false, "", time.Time{}
		}
		cmps = append(cmps, store.At(hostKey(h.Name), h.Revision))
		ops = append(ops, putJSON(hostKey(h.Name), h),
			e.eventOp(Event{Kind: kind, Cluster: cluster, Subject: h.Name, Detail: detail}))
		hosts[h.Name] = h
	}
	if len(ops) == 0 {
		return nil
	}
	if cluster != "" {
		ops = append(ops, livenessOp(cluster, c.Nodes, hosts))
		after, err := EvaluateQuorum(before.QuorumSpec, clusterNodes(c, hosts))
		if err != nil {
			return err
		}
		if before.Status.HasQuorum != after.HasQuorum {
			kind := EventQuorumRegained
			if !after.HasQuorum {
				kind = EventQuorumLost
			}
			ops = append(ops, e.eventOp(Event{Kind: kind, Cluster: cluster, Subject: cluster, Detail: map[string]string{
				"type":          before.Type,
				"votes_present": fmt.Sprint(after.VotesPresent),
				"votes_needed":  fmt.Sprint(after.VotesNeeded),
				"total_votes":   fmt.Sprint(after.TotalVotes),
				"down":          strings.Join(after.Down, ","),
			}}))
		}
	}
	_, err = e.st.Commit(ctx, cmps, ops)
	return err
}
