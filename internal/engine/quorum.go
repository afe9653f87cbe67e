package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/quorum"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// A cluster always has a quorum configuration: node_majority implicitly,
// until a kayo_quorum writes a record at quorum/<cluster>. Destroying the
// kayo_quorum deletes the record, which returns the cluster to
// node_majority.

// Quorum event kinds.
const (
	EventQuorumConfigured = "quorum.configured"
	EventQuorumReset      = "quorum.reset"
	EventQuorumLost       = "quorum.lost"
	EventQuorumRegained   = "quorum.regained"
)

// WitnessDiskSize is the size of a witness LUN the embedded SAN creates
// (sparse: nothing is allocated). Windows asks for at least 512 MB.
const WitnessDiskSize = 512 << 20

// QuorumSpec is what a kayo_quorum declares.
type QuorumSpec struct {
	Cluster      string `json:"cluster"`
	Type         string `json:"type"`
	WitnessDisk  string `json:"witness_disk,omitempty"`
	WitnessShare string `json:"witness_share,omitempty"`
}

// QuorumStatus is a cluster's vote count now, from its nodes' states.
type QuorumStatus struct {
	TotalVotes        int `json:"total_votes"`
	VotesNeeded       int `json:"votes_needed"`
	FailuresTolerated int `json:"failures_tolerated"`
	Nodes             int `json:"nodes"`
	NodesUp           int `json:"nodes_up"`
	// VotesPresent counts the votes of up nodes and of the witness.
	VotesPresent int  `json:"votes_present"`
	WitnessUp    bool `json:"witness_up"`
	HasQuorum    bool `json:"has_quorum"`
	// NodeVotes is the vote each node carries: 1, or 0 under disk_only.
	NodeVotes int `json:"node_votes"`
	// Down lists the nodes that are down, by name.
	Down []string `json:"down,omitempty"`
}

// Quorum is a cluster's quorum configuration and its current status.
type Quorum struct {
	QuorumSpec
	UpdatedAt time.Time `json:"updated_at"`
	// WitnessCreated: the embedded SAN image of WitnessDisk was created by
	// this configuration, so it goes when the configuration stops using it.
	WitnessCreated bool `json:"witness_created,omitempty"`
	// Managed is true when a kayo_quorum set the configuration; false means
	// the implicit node_majority of a cluster without one.
	Managed  bool         `json:"-"`
	Status   QuorumStatus `json:"-"`
	Revision int64        `json:"-"`
}

// implicitQuorum is the configuration of a cluster without a kayo_quorum.
func implicitQuorum(cluster string) QuorumSpec {
	return QuorumSpec{Cluster: cluster, Type: string(quorum.NodeMajority)}
}

// CheckQuorumSpec checks a quorum configuration for a cluster of nodes
// nodes: the type, and exactly the witness the type needs, well formed. The
// error is an InputError naming the attribute.
func CheckQuorumSpec(s QuorumSpec, nodes int) error {
	err := quorum.Validate(quorum.Config{Type: quorum.Type(s.Type), Nodes: nodes}, s.WitnessDisk, s.WitnessShare)
	if err == nil {
		return nil
	}
	// quorum's errors start with the attribute they are about.
	msg := err.Error()
	attr, detail, ok := strings.Cut(msg, ": ")
	if !ok || strings.ContainsAny(attr, " \"") {
		attr, detail = "type", msg
	}
	value := s.Type
	switch attr {
	case "witness_disk":
		value = s.WitnessDisk
	case "witness_share":
		value = s.WitnessShare
		// Show a UNC path as written, not Go-quoted (\\\\server\\share).
		detail = strings.ReplaceAll(detail, strconv.Quote(s.WitnessShare), `"`+s.WitnessShare+`"`)
	case "witness":
		attr = "type"
	}
	return &InputError{Attribute: attr, Value: value, Detail: detail}
}

// EvaluateQuorum is the pure status of a cluster configured as s whose
// nodes are in the states given. A node votes unless it is down
// (maintenance is a paused node: it still votes, as in Windows). The
// witness is taken to be up: the lab does not fail witnesses yet.
func EvaluateQuorum(s QuorumSpec, nodes []Host) (QuorumStatus, error) {
	t := quorum.Type(s.Type)
	cfg := quorum.Config{Type: t, Nodes: len(nodes), Witness: t.NeedsWitness()}
	f, err := quorum.Compute(cfg)
	if err != nil {
		return QuorumStatus{}, err
	}
	st := QuorumStatus{
		TotalVotes: f.TotalVotes, VotesNeeded: f.VotesNeeded, FailuresTolerated: f.FailuresTolerated,
		Nodes: len(nodes), WitnessUp: true, NodeVotes: 1,
	}
	for _, h := range nodes {
		if h.Down {
			st.Down = append(st.Down, h.Name)
		} else {
			st.NodesUp++
		}
	}
	slices.Sort(st.Down)
	st.HasQuorum = quorum.HasQuorum(cfg, st.NodesUp, st.WitnessUp)
	if t == quorum.DiskOnly {
		st.NodeVotes = 0
		if st.WitnessUp {
			st.VotesPresent = 1
		}
	} else {
		st.VotesPresent = st.NodesUp
		if cfg.Witness && st.WitnessUp {
			st.VotesPresent++
		}
	}
	return st, nil
}

// clusterNodes returns the host records of c's nodes (a node whose host
// record is missing counts as down).
func clusterNodes(c Cluster, hosts map[string]Host) []Host {
	out := make([]Host, 0, len(c.Nodes))
	for _, n := range c.Nodes {
		h, ok := hosts[n]
		if !ok {
			h = Host{HostSpec: HostSpec{Name: n}, Down: true}
		}
		out = append(out, h)
	}
	return out
}

// quorumRecord returns the configuration of cluster from its quorum
// record as GetMany read it (implicit when missing) and the Cmp that pins
// it for a commit.
func quorumRecord(cluster string, kv store.KV) (Quorum, store.Cmp, error) {
	if !kv.Exists() {
		return Quorum{QuorumSpec: implicitQuorum(cluster)}, store.Absent(quorumKey(cluster)), nil
	}
	var q Quorum
	if err := decode(kv, &q); err != nil {
		return Quorum{}, store.Cmp{}, err
	}
	q.Managed, q.Revision = true, kv.ModRevision
	return q, store.At(quorumKey(cluster), kv.ModRevision), nil
}

// clusterRecKeys are the records of a cluster a quorum guard reads:
// the cluster, its quorum and its liveness record.
func clusterRecKeys(cluster string) []string {
	return []string{clusterKey(cluster), quorumKey(cluster), livenessKey(cluster)}
}

// readClusterRecs reads clusterRecKeys in one snapshot: the cluster and
// the quorum and liveness records (possibly missing) for quorumFrom.
func (e *Engine) readClusterRecs(ctx context.Context, name string) (Cluster, store.KV, store.KV, error) {
	kvs, err := e.st.GetMany(ctx, clusterRecKeys(name)...)
	if err != nil {
		return Cluster{}, store.KV{}, store.KV{}, fmt.Errorf("cluster %q: %w", name, err)
	}
	c, err := clusterRecord(name, kvs[0])
	return c, kvs[1], kvs[2], err
}

// clusterRecord is GetCluster on a record GetMany read.
func clusterRecord(name string, kv store.KV) (Cluster, error) {
	if !kv.Exists() {
		return Cluster{}, fmt.Errorf("cluster %q does not exist: %w", name, ErrNotFound)
	}
	var c Cluster
	if err := decode(kv, &c); err != nil {
		return Cluster{}, fmt.Errorf("cluster %q: %w", name, err)
	}
	c.Revision = kv.ModRevision
	return c, nil
}

// quorumAndNodes evaluates cluster c with the given hosts: its
// configuration, status, the node states it judged, and the comparisons
// that pin what the status was computed from (the quorum record and the
// cluster's liveness record, read together).
func (e *Engine) quorumAndNodes(ctx context.Context, c Cluster, hosts map[string]Host) (Quorum, []Host, []store.Cmp, error) {
	kvs, err := e.st.GetMany(ctx, quorumKey(c.Name), livenessKey(c.Name))
	if err != nil {
		return Quorum{}, nil, nil, err
	}
	return e.quorumNodesFrom(ctx, c, kvs[0], kvs[1], hosts)
}

// quorumFrom is quorumAndNodes on the quorum and liveness records already
// read, without the nodes.
func (e *Engine) quorumFrom(ctx context.Context, c Cluster, qkv, lkv store.KV, hosts map[string]Host) (Quorum, []store.Cmp, error) {
	q, _, cmps, err := e.quorumNodesFrom(ctx, c, qkv, lkv, hosts)
	return q, cmps, err
}

func (e *Engine) quorumNodesFrom(ctx context.Context, c Cluster, qkv, lkv store.KV, hosts map[string]Host) (Quorum, []Host, []store.Cmp, error) {
	q, cmp, err := quorumRecord(c.Name, qkv)
	if err != nil {
		return Quorum{}, nil, nil, err
	}
	nodes, lcmps, err := e.nodeStatesFrom(ctx, c, lkv, hosts)
	if err != nil {
		return Quorum{}, nil, nil, err
	}
	cmps := append([]store.Cmp{cmp}, lcmps...)
	q.Status, err = EvaluateQuorum(q.QuorumSpec, nodes)
	if err != nil {
		return Quorum{}, nil, nil, fmt.Errorf("cluster %q: quorum configuration %q: %w", c.Name, q.Type, err)
	}
	return q, nodes, cmps, nil
}

// GetQuorum returns a cluster's quorum configuration (node_majority, not
// Managed, when no kayo_quorum set one) and its current status.
func (e *Engine) GetQuorum(ctx context.Context, cluster string) (Quorum, error) {
	c, qkv, lkv, err := e.readClusterRecs(ctx, cluster)
	if err != nil {
		return Quorum{}, err
	}
	// The status needs only the nodes' Down flags: the liveness record
	// has them (without it, quorumFrom reads the hosts).
	q, _, err := e.quorumFrom(ctx, c, qkv, lkv, nil)
	return q, err
}

// RequireQuorum returns a *QuorumLostError (ErrQuorumLost) when cluster
// has no quorum now; action names what is refused ("creating volume O:").
// Engine operations that change a cluster's state call it; for an
// atomic check, compare the returned revisions in the same commit (see
// QuorumGuard).
func (e *Engine) RequireQuorum(ctx context.Context, cluster, action string) error {
	_, err := e.QuorumGuard(ctx, cluster, action)
	return err
}

// QuorumGuard is RequireQuorum that also returns the comparisons a commit
// must carry so that it fails (ErrConflict, then retried) if a node goes
// down or the quorum configuration changes between the check and the
// commit.
func (e *Engine) QuorumGuard(ctx context.Context, cluster, action string) ([]store.Cmp, error) {
	kvs, err := e.st.GetMany(ctx, clusterRecKeys(cluster)...)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: %w", cluster, err)
	}
	// The guard needs the nodes, not the validation report: the head,
	// decoded once per record version (every VM delete asks).
	c, err := e.clusterHeadRecord(cluster, kvs[0])
	if err != nil {
		return nil, err
	}
	return e.guardFrom(ctx, c, kvs[1], kvs[2], nil, action)
}

// guardFrom checks c's quorum from its quorum and liveness records as read
// with c, returning the comparisons that pin them (a *QuorumLostError
// naming action when c has no quorum).
func (e *Engine) guardFrom(ctx context.Context, c Cluster, qkv, lkv store.KV, hosts map[string]Host, action string) ([]store.Cmp, error) {
	q, cmps, err := e.quorumFrom(ctx, c, qkv, lkv, hosts)
	if err != nil {
		return nil, err
	}
	if !q.Status.HasQuorum {
		return nil, &QuorumLostError{Cluster: c.Name, Status: q.Status, Action: action}
	}
	return cmps, nil
}

// CreateQuorum sets the quorum configuration of a cluster that has none
// set yet (it runs the implicit node_majority). A cluster whose quorum a
// kayo_quorum already set is refused with ErrExists: import that one.
func (e *Engine) CreateQuorum(ctx context.Context, s QuorumSpec) (Quorum, error) {
	return e.setQuorum(ctx, s, true)
}

// UpdateQuorum changes a cluster's quorum configuration in place.
func (e *Engine) UpdateQuorum(ctx context.Context, s QuorumSpec) (Quorum, error) {
	return e.setQuorum(ctx, s, false)
}

func (e *Engine) setQuorum(ctx context.Context, s QuorumSpec, create bool) (Quorum, error) {
	var out Quorum
	made := false // the witness image was created by a try of this call
	err := e.retry(ctx, func() error {
		c, qkv, lkv, err := e.readClusterRecs(ctx, s.Cluster)
		if err != nil {
			return err
		}
		if err := CheckQuorumSpec(s, len(c.Nodes)); err != nil {
			return err
		}
		hosts, err := e.hostMap(ctx)
		if err != nil {
			return err
		}
		cur, cmps, err := e.quorumFrom(ctx, c, qkv, lkv, hosts)
		if err != nil {
			return err
		}
		if create && cur.Managed {
			return fmt.Errorf("cluster %q already has its quorum set by a kayo_quorum (type %q); a cluster has exactly one: "+
				"import it (terraform import kayo_quorum.NAME %s) instead of declaring a second: %w", c.Name, cur.Type, c.Name, ErrExists)
		}
		if !cur.Status.HasQuorum {
			return &QuorumLostError{Cluster: c.Name, Status: cur.Status, Action: "changing its quorum configuration"}
		}
		created, err := e.checkWitnessDisk(ctx, s)
		if err != nil {
			return err
		}
		made = made || created
		next := Quorum{QuorumSpec: s, UpdatedAt: e.now().UTC(), Managed: true,
			WitnessCreated: made || cur.Managed && cur.WitnessCreated && cur.WitnessDisk == s.WitnessDisk}
		next.Status, err = EvaluateQuorum(s, clusterNodes(c, hosts))
		if err != nil {
			return err
		}
		if !next.Status.HasQuorum {
			return &QuorumLostError{Cluster: c.Name, Status: next.Status, Would: true,
				Action: fmt.Sprintf("quorum type %q", s.Type)}
		}
		detail := map[string]string{"type": s.Type, "previous_type": cur.Type,
			"total_votes": fmt.Sprint(next.Status.TotalVotes), "votes_needed": fmt.Sprint(next.Status.VotesNeeded)}
		if s.WitnessDisk != "" {
			detail["witness_disk"] = s.WitnessDisk
		}
		if s.WitnessShare != "" {
			detail["witness_share"] = s.WitnessShare
		}
		rev, err := e.st.Commit(ctx, append(cmps, store.At(clusterKey(c.Name), c.Revision)), []store.Op{
			putJSON(quorumKey(c.Name), next),
			e.eventOp(Event{Kind: EventQuorumConfigured, Cluster: c.Name, Subject: c.Name, Detail: detail}),
		})
		if err != nil {
			return err
		}
		next.Revision = rev
		out = next
		if cur.Managed && cur.WitnessDisk != s.WitnessDisk {
			e.removeWitnessImage(cur)
		}
		return nil
	})
	return out, err
}

// removeWitnessImage deletes the embedded witness image q created, once
// q's configuration no longer uses it.
func (e *Engine) removeWitnessImage(q Quorum) {
	if !q.WitnessCreated || q.WitnessDisk == "" || filepath.IsAbs(q.WitnessDisk) || e.dataDir == "" {
		return
	}
	_ = os.Remove(e.LUNPath(q.WitnessDisk))
}

// ResetQuorum returns a cluster to the implicit node_majority (what
// destroying its kayo_quorum does).
func (e *Engine) ResetQuorum(ctx context.Context, cluster string) error {
	return e.retry(ctx, func() error {
		c, qkv, lkv, err := e.readClusterRecs(ctx, cluster)
		if err != nil {
			return err
		}
		hosts, err := e.hostMap(ctx)
		if err != nil {
			return err
		}
		cur, cmps, err := e.quorumFrom(ctx, c, qkv, lkv, hosts)
		if err != nil {
			return err
		}
		if !cur.Managed {
			return nil
		}
		forced, err := resetVerdict(c, cur, hosts)
		if err != nil {
			return err
		}
		detail := map[string]string{"type": string(quorum.NodeMajority), "previous_type": cur.Type}
		if forced {
			detail["forced"] = "force_destroy"
		}
		// Forced: the cluster is being torn down with nodes gone for
		// good; only its quorum record goes, no node's data is touched.
		_, err = e.st.Commit(ctx, cmps, []store.Op{
			store.Del(quorumKey(c.Name)),
			e.eventOp(Event{Kind: EventQuorumReset, Cluster: c.Name, Subject: c.Name, Detail: detail}),
		})
		if err == nil {
			e.removeWitnessImage(cur)
		}
		return err
	})
}

// resetVerdict judges returning c (quorum cur) to node_majority: refused
// with a *ForceRequiredError when c has no quorum or would lose it, unless
// c.ForceDestroy, in which case forced is true.
func resetVerdict(c Cluster, cur Quorum, hosts map[string]Host) (forced bool, err error) {
	if !cur.Status.HasQuorum {
		if !c.ForceDestroy {
			return false, &ForceRequiredError{Cause: &QuorumLostError{Cluster: c.Name, Status: cur.Status,
				Action: "resetting its quorum to node_majority"}}
		}
		return true, nil
	}
	next, err := EvaluateQuorum(implicitQuorum(c.Name), clusterNodes(c, hosts))
	if err != nil {
		return false, err
	}
	if !next.HasQuorum {
		if !c.ForceDestroy {
			return false, &ForceRequiredError{Cause: &QuorumLostError{Cluster: c.Name, Status: next, Would: true,
				Action: fmt.Sprintf("returning to %q", quorum.NodeMajority)}}
		}
		return true, nil
	}
	return false, nil
}

// PlanQuorumReset says, against the committed database, what ResetQuorum
// would do: forced is true when it goes through only by force_destroy;
// the error is its refusal.
func (e *Engine) PlanQuorumReset(ctx context.Context, cluster string) (forced bool, err error) {
	c, qkv, lkv, err := e.readClusterRecs(ctx, cluster)
	if err != nil {
		return false, err
	}
	hosts, err := e.hostMap(ctx)
	if err != nil {
		return false, err
	}
	cur, _, err := e.quorumFrom(ctx, c, qkv, lkv, hosts)
	if err != nil || !cur.Managed {
		return false, err
	}
	return resetVerdict(c, cur, hosts)
}

// WitnessOf returns the cluster whose quorum uses the witness disk lun, or
// "" when none does. A shared volume must not be formatted on it.
func (e *Engine) WitnessOf(ctx context.Context, lun string) (string, error) {
	if lun == "" {
		return "", nil // no witness disk, or a volume named by device_id/device_paths
	}
	qs, _, err := listJSON[Quorum](ctx, e.st, quorumPrefix)
	if err != nil {
		return "", err
	}
	for _, q := range qs {
		if q.WitnessDisk == lun {
			return q.Cluster, nil
		}
	}
	return "", nil
}

// checkWitnessDisk checks s's witness disk: not another cluster's witness,
// not a Kayo FS data volume; an embedded-SAN LUN that does not exist yet is
// created small (sparse), and created says so.
func (e *Engine) checkWitnessDisk(ctx context.Context, s QuorumSpec) (created bool, err error) {
	if s.WitnessDisk == "" {
		return false, nil
	}
	owner, err := e.WitnessOf(ctx, s.WitnessDisk)
	if err != nil {
		return false, err
	}
	if owner != "" && owner != s.Cluster {
		return false, &InputError{Attribute: "witness_disk", Value: s.WitnessDisk,
			Detail: fmt.Sprintf("%q is already the witness disk of cluster %q; a witness disk belongs to one cluster: give this one its own LUN", s.WitnessDisk, owner)}
	}
	path := s.WitnessDisk
	if !filepath.IsAbs(path) {
		if e.dataDir == "" {
			return false, nil // no embedded SAN on this store: the LUN is the operator's
		}
		path = e.LUNPath(s.WitnessDisk)
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if filepath.IsAbs(s.WitnessDisk) {
			return false, &InputError{Attribute: "witness_disk", Value: s.WitnessDisk,
				Detail: fmt.Sprintf("block device %q does not exist; give an existing device or a LUN name of the embedded SAN", s.WitnessDisk)}
		}
		if err := e.makeSANDir(path); err != nil {
			return false, fmt.Errorf("witness_disk %q: cannot create the embedded SAN directory: %w", s.WitnessDisk, pathCause(err))
		}
		dev, err := kayofs.CreateImage(path, WitnessDiskSize)
		if err != nil && !errors.Is(err, os.ErrExist) {
			return false, fmt.Errorf("witness_disk %q: cannot create LUN %s: %w", s.WitnessDisk, path, pathCause(err))
		}
		if dev != nil {
			return true, dev.Close()
		}
		return false, nil
	}
	dev, err := kayofs.OpenDevice(path)
	if err != nil {
		return false, fmt.Errorf("witness_disk %q: cannot open %s: %w", s.WitnessDisk, path, pathCause(err))
	}
	defer func() { _ = dev.Close() }()
	fs, err := kayofs.Probe(dev)
	if err != nil {
		return false, fmt.Errorf("witness_disk %q: cannot read %s: %w", s.WitnessDisk, path, pathCause(err))
	}
	if fs == "kayofs" {
		return false, &InputError{Attribute: "witness_disk", Value: s.WitnessDisk,
			Detail: fmt.Sprintf("%q holds a Kayo FS data volume; a witness disk must be a LUN of its own, not a shared volume", s.WitnessDisk)}
	}
	return false, nil
}

// checkMembershipQuorum refuses a membership change of c to next that
// would leave the cluster without quorum (removing up nodes shrinks the
// votes present faster than the votes needed).
// qkv is c's quorum record as read with c (readClusterRecs).
func checkMembershipQuorum(c Cluster, next ClusterSpec, hosts map[string]Host, removed []string, qkv store.KV) error {
	if len(removed) == 0 {
		return nil
	}
	q, _, err := quorumRecord(c.Name, qkv)
	if err != nil {
		return err
	}
	st, err := EvaluateQuorum(q.QuorumSpec, clusterNodes(Cluster{ClusterSpec: next}, hosts))
	if err != nil {
		return &InputError{Attribute: "nodes", Value: fmt.Sprint(len(next.Nodes)),
			Detail: fmt.Sprintf("quorum type %q of cluster %q: %v", q.Type, c.Name, err)}
	}
	if !st.HasQuorum {
		return &QuorumLostError{Cluster: c.Name, Status: st, Would: true,
			Action: "removing node(s) " + strings.Join(removed, ", ")}
	}
	return nil
}
