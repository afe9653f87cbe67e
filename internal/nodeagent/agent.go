package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// The node agent (kayoctl agent --node NAME) runs Agent.Tick every
// interval: it heartbeats, campaigns for its cluster's leader lease, and,
// while it leads, declares silent nodes down and returning ones up.
//
// The lease is a record at agents/<cluster>/leader. On a store with leases
// (store.Leaser: etcd, and bbolt and memstore alike) the record is held by
// a key at agents/<cluster>/lock attached to a store lease the agent keeps
// alive: the lease expires by the store's clock alone (agent_lease.go).
// Otherwise the record itself is taken and renewed by compare-and-swap on
// its revision, with an expiry time by the agents' clocks. Taking it over
// (free, expired, or never held) increments its term; every action the
// leader commits compares the revision of the lock (or record), so an
// agent that lost the lease (paused past its expiry while another took
// over) cannot act: its commit fails. The term is the fencing token
// recorded in every event a leader writes.

// Agent event kinds.
const (
	EventLeaderElected  = "agent.leader_elected"
	EventLeaderReleased = "agent.leader_released"
)

// DefaultLeaseTTL is the leader lease's lifetime unless renewed.
const DefaultLeaseTTL = 3 * time.Second

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
	e   *Engine
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

// NewAgent returns the agent of node cfg.Node.
func (e *Engine) NewAgent(cfg AgentConfig) (*Agent, error) {
	if err := checkHostName(cfg.Node); err != nil {
		return nil, fmt.Errorf("--node: %w", err)
	}
	if cfg.ID == "" {
		cfg.ID = fmt.Sprintf("%s/%d/%s", cfg.Node, os.Getpid(), randomHex(3))
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	a := &Agent{e: e, cfg: cfg}
	a.leaser, _ = e.st.(store.Leaser)
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
	Decisions []LivenessDecision
	// Failbacks are the VMs the leader failed back (failback.go).
	Failbacks []FailbackDecision
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
	if h.Down && h.DownReason == DownByLab {
		// A crashed host leads nothing: the lab failed this node.
		return rep, a.Release(ctx)
	}
	if now := e.now(); now.Sub(a.reported) >= VolumeReportInterval {
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
	rep.Decisions, err = a.judge(ctx, h.Cluster)
	if errors.Is(err, store.ErrConflict) {
		// Someone changed the cluster (or took the lease) meanwhile: judge
		// afresh next tick.
		return rep, nil
	}
	if err != nil {
		return rep, err
	}
	if err := e.reconcileFailover(ctx, h.Cluster); err != nil {
		return rep, err
	}
	rep.Failbacks, err = a.lead(ctx, h.Cluster)
	return rep, err
}

// lead runs the leader's VM duties after failover, fenced by the lease:
// finishing drains of nodes in maintenance, then failback.
func (a *Agent) lead(ctx context.Context, cluster string) ([]FailbackDecision, error) {
	c, err := a.e.GetCluster(ctx, cluster)
	if err != nil {
		return nil, err
	}
	fence := []store.Cmp{a.fence()}
	derr := a.e.reconcileDrains(ctx, c, fence)
	fb, ferr := a.e.reconcileFailback(ctx, c, fence, a.term)
	return fb, errors.Join(derr, ferr)
}

// campaign takes or renews the cluster's lease. It reports whether this
// agent took it over now; a.term > 0 while it leads.
func (a *Agent) campaign(ctx context.Context, cluster string) (bool, error) {
	if a.leaser != nil {
		return a.campaignLeased(ctx, cluster)
	}
	e := a.e
	now := e.now().UTC()
	var cur Lease
	rev, err := getJSON(ctx, e.st, leaseKey(cluster), &cur)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	mine := rev != 0 && cur.Agent == a.cfg.ID
	if rev != 0 && !mine && now.Before(cur.Expires) {
		a.resign()
		return false, nil // someone else leads
	}
	next := Lease{Cluster: cluster, Holder: a.cfg.Node, Agent: a.cfg.ID, Term: cur.Term,
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
		ops = append(ops, e.eventOp(Event{Kind: EventLeaderElected, Cluster: cluster, Subject: a.cfg.Node, Detail: detail}))
	}
	ops = append([]store.Op{putJSON(leaseKey(cluster), next)}, ops...)
	newRev, err := e.st.Commit(ctx, []store.Cmp{cmp}, ops)
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

// judge runs the failure detector over the cluster and commits its
// decisions, fenced by the lease.
func (a *Agent) judge(ctx context.Context, cluster string) ([]LivenessDecision, error) {
	e := a.e
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
			"by": a.cfg.Node, "term": fmt.Sprint(a.term), "agent": a.cfg.ID,
			"silent_for": d.Silent.Round(time.Millisecond).String(), "heartbeat_timeout": timeout.String(),
			"last_heartbeat": hbs[d.Node].Time.Format(time.RFC3339Nano),
		}}
		if d.Down {
			ch.Reason = DownByHeartbeat
		}
		changes = append(changes, ch)
	}
	if err := e.applyHostChanges(ctx, cluster, changes, []store.Cmp{a.fence()}); err != nil {
		return nil, err
	}
	return decisions, nil
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
	l.Expires = e.now().UTC()
	_, err = e.st.Commit(ctx, []store.Cmp{store.At(leaseKey(cluster), rev)}, []store.Op{
		putJSON(leaseKey(cluster), l),
		e.eventOp(Event{Kind: EventLeaderReleased, Cluster: cluster, Subject: a.cfg.Node,
			Detail: map[string]string{"term": fmt.Sprint(term), "agent": a.cfg.ID}}),
	})
	if errors.Is(err, store.ErrConflict) {
		return nil
	}
	return err
}
