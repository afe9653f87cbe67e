// Package nodeagent is a node's agent (kayoctl agent --node NAME): the
// long-running process of one host that heartbeats, campaigns for its
// cluster's leader lease and, while it leads, applies the engine's
// decisions (engine.LeaderTick); its executors carry out the requests the
// engine records for its node (the QEMU runner: internal/nodeagent/qemurun).
// It reaches the engine only through its exported API and the records it
// shares (docs/ARCHITECTURE.md, "Control plane and node agents").
package nodeagent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/record"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// The node agent (kayoctl agent --node NAME) runs Agent.Tick every
// interval: it heartbeats, campaigns for its cluster's leader lease, and,
// while it leads, declares silent nodes down and returning ones up.
//
// The lease is a record at agents/<cluster>/leader. On a store with leases
// (store.Leaser: etcd, and bbolt and memstore alike) the record is held by
// a key at agents/<cluster>/lock attached to a store lease the agent keeps
// alive: the lease expires by the store's clock alone (lease.go).
// Otherwise the record itself is taken and renewed by compare-and-swap on
// its revision, with an expiry time by the agents' clocks. Taking it over
// (free, expired, or never held) increments its term; every action the
// leader commits compares the revision of the lock (or record), so an
// agent that lost the lease (paused past its expiry while another took
// over) cannot act: its commit fails. The term is the fencing token
// recorded in every event a leader writes.

// DefaultLeaseTTL is the leader lease's lifetime unless renewed.
const DefaultLeaseTTL = 3 * time.Second

// AgentConfig configures a node agent.
type AgentConfig struct {
	// Node is the host the agent runs for.
	Node string
	// ID names this agent process; default node/pid/random.
	ID string
	// LeaseTTL is the leader lease's lifetime; DefaultLeaseTTL when 0.
	// Keep it a few tick intervals long and below the clusters' heartbeat
	// timeouts, so a dead leader is replaced before its silence matters.
	LeaseTTL time.Duration
}

// Agent is one node's agent. It is not safe for concurrent use: one
// goroutine calls Tick.
type Agent struct {
	e   *engine.Engine
	st  store.Store
	cfg AgentConfig
	seq int64
	// While leading: the cluster, term and the revision of the key that
	// fences the leader's commits (fenceKey: the lock or the record).
	cluster  string
	term     int64
	leaseRev int64
	fenceKey string
	// leaser is the store's leases (nil: lease records by the clock);
	// storeLease the lease this agent's lock is attached to.
	leaser     store.Leaser
	storeLease store.LeaseID
	// aliveLease holds the node's alive key, with aliveTTL (heartbeats on
	// store leases).
	aliveLease store.LeaseID
	aliveTTL   time.Duration
	// reported is when the agent last reported its node's volumes.
	reported time.Time
}

// New returns the agent of node cfg.Node on engine e.
func New(e *engine.Engine, cfg AgentConfig) (*Agent, error) {
	if err := engine.CheckHostName(cfg.Node); err != nil {
		return nil, fmt.Errorf("--node: %w", err)
	}
	if cfg.ID == "" {
		cfg.ID = fmt.Sprintf("%s/%d/%s", cfg.Node, os.Getpid(), randomHex(3))
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	a := &Agent{e: e, st: e.Store(), cfg: cfg}
	a.leaser, _ = a.st.(store.Leaser)
	return a, nil
}

// fence is the comparison every commit of the leader carries.
func (a *Agent) fence() store.Cmp { return store.At(a.fenceKey, a.leaseRev) }

// resign forgets leadership (a.term == 0 while not leading) and the store
// lease, left to expire with any lock still attached to it (of a cluster
// the node left, say).
func (a *Agent) resign() {
	a.cluster, a.term, a.leaseRev, a.fenceKey, a.storeLease = "", 0, 0, "", 0
}

// ID is the agent's identity as leases and heartbeats record it.
func (a *Agent) ID() string { return a.cfg.ID }

// TickReport says what one Tick did.
type TickReport struct {
	// Cluster is the agent's node's cluster ("" when it is in none).
	Cluster string
	// Leader: this agent holds the cluster's lease; Elected: it took it
	// over in this tick; Term is the lease's term while leading.
	Leader  bool
	Elected bool
	Term    int64
	// Decisions are the node state changes the leader committed.
	Decisions []engine.LivenessDecision
	// Failbacks are the VMs the leader failed back (internal/engine/failback.go).
	Failbacks []engine.FailbackDecision
}

// Tick heartbeats, campaigns, and while leading judges the cluster's nodes.
func (a *Agent) Tick(ctx context.Context) (_ TickReport, err error) {
	e := a.e
	a.seq++
	if err := a.heartbeat(ctx); err != nil {
		return TickReport{}, fmt.Errorf("heartbeat: %w", err)
	}
	h, err := e.GetHost(ctx, a.cfg.Node)
	if err != nil {
		return TickReport{}, fmt.Errorf("node %q: %w (register it with a kayo_host first)", a.cfg.Node, err)
	}
	if err := a.tuneAlive(ctx, h.Cluster); err != nil {
		return TickReport{}, fmt.Errorf("heartbeat: %w", err)
	}
	if a.cluster != "" && a.cluster != h.Cluster {
		a.resign() // no longer a node of that cluster
	}
	rep := TickReport{Cluster: h.Cluster}
	if h.Cluster == "" {
		return rep, nil
	}
	if h.Down && h.DownReason == engine.DownByLab {
		// A crashed host leads nothing: the lab failed this node.
		return rep, a.Release(ctx)
	}
	if now := e.Now(); now.Sub(a.reported) >= engine.VolumeReportInterval {
		// What this node sees of its volumes (volume_reports.go). A
		// failed report does not hold the leader's duties up: it is
		// retried next tick and said after them.
		if rerr := e.ReportNodeVolumes(ctx, a.cfg.Node, a.cfg.ID); rerr != nil {
			defer func() { err = errors.Join(err, fmt.Errorf("volume reports: %w", rerr)) }()
		} else {
			a.reported = now
		}
	}
	elected, err := a.campaign(ctx, h.Cluster)
	if err != nil {
		return rep, err
	}
	rep.Leader, rep.Elected, rep.Term = a.term > 0, elected, a.term
	if !rep.Leader {
		return rep, nil
	}
	lr, err := e.LeaderTick(ctx, h.Cluster, a.leaderFence())
	if errors.Is(err, store.ErrConflict) {
		// Someone changed the cluster (or took the lease) meanwhile: judge
		// afresh next tick.
		return rep, nil
	}
	rep.Decisions, rep.Failbacks = lr.Decisions, lr.Failbacks
	return rep, err
}

// leaderFence is who leads and what fences its commits, for the engine.
func (a *Agent) leaderFence() engine.LeaderFence {
	return engine.LeaderFence{Node: a.cfg.Node, Agent: a.cfg.ID, Term: a.term, Fence: a.fence()}
}

// campaign takes or renews the cluster's lease. It reports whether this
// agent took it over now; a.term > 0 while it leads.
func (a *Agent) campaign(ctx context.Context, cluster string) (bool, error) {
	if a.leaser != nil {
		return a.campaignLeased(ctx, cluster)
	}
	e := a.e
	now := e.Now().UTC()
	var cur engine.Lease
	rev, err := record.Get(ctx, a.st, leaseKey(cluster), &cur)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	mine := rev != 0 && cur.Agent == a.cfg.ID
	if rev != 0 && !mine && now.Before(cur.Expires) {
		a.resign()
		return false, nil // someone else leads
	}
	next := engine.Lease{Cluster: cluster, Holder: a.cfg.Node, Agent: a.cfg.ID, Term: cur.Term,
		Acquired: cur.Acquired, Expires: now.Add(a.cfg.LeaseTTL)}
	cmp := store.Absent(leaseKey(cluster))
	if rev != 0 {
		cmp = store.At(leaseKey(cluster), rev)
	}
	ops := []store.Op{}
	if !mine {
		next.Term, next.Acquired = cur.Term+1, now
		detail := map[string]string{"term": fmt.Sprint(next.Term), "agent": a.cfg.ID,
			"lease_ttl": a.cfg.LeaseTTL.String()}
		if cur.Holder != "" {
			detail["previous"] = cur.Holder
			detail["previous_term"] = fmt.Sprint(cur.Term)
			detail["previous_expired"] = cur.Expires.Format(time.RFC3339Nano)
		}
		ops = append(ops, e.EventOp(engine.Event{Kind: engine.EventLeaderElected, Cluster: cluster, Subject: a.cfg.Node, Detail: detail}))
	}
	ops = append([]store.Op{record.Put(leaseKey(cluster), next)}, ops...)
	newRev, err := a.st.Commit(ctx, []store.Cmp{cmp}, ops)
	if errors.Is(err, store.ErrConflict) {
		a.resign()
		return false, nil // another agent won this round
	}
	if err != nil {
		return false, err
	}
	a.cluster, a.term, a.leaseRev, a.fenceKey = cluster, next.Term, newRev, leaseKey(cluster)
	return !mine, nil
}

// Release gives the lease up (on shutdown, or when the node is failed), so
// another agent takes over at once instead of after its expiry.
func (a *Agent) Release(ctx context.Context) error {
	if a.leaser != nil {
		return a.releaseLeased(ctx)
	}
	if a.term == 0 {
		return nil
	}
	e := a.e
	cluster, term, rev := a.cluster, a.term, a.leaseRev
	a.resign()
	l, err := e.Leader(ctx, cluster)
	if err != nil || l.Revision != rev {
		return nil // gone or taken over already
	}
	l.Expires = e.Now().UTC()
	_, err = a.st.Commit(ctx, []store.Cmp{store.At(leaseKey(cluster), rev)}, []store.Op{
		record.Put(leaseKey(cluster), l),
		e.EventOp(engine.Event{Kind: engine.EventLeaderReleased, Cluster: cluster, Subject: a.cfg.Node,
			Detail: map[string]string{"term": fmt.Sprint(term), "agent": a.cfg.ID}}),
	})
	if errors.Is(err, store.ErrConflict) {
		return nil
	}
	return err
}

// leaseKey and lockKey are cluster's leader lease keys (engine.LeaderKeys).
func leaseKey(cluster string) string { k, _ := engine.LeaderKeys(cluster); return k }
func lockKey(cluster string) string  { _, k := engine.LeaderKeys(cluster); return k }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
