package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/validate"
)

// OS editions, processor vendors and features a host may declare.
var (
	OSEditions       = []string{"standard", "enterprise", "datacenter"}
	ProcessorVendors = []string{"intel", "amd"}
)

// CheckHostSpec checks what a host can be judged on alone. Whether it can be
// a cluster node (edition, features, adapters) is cluster validation's call.
func CheckHostSpec(s HostSpec) error {
	if err := checkHostName(s.Name); err != nil {
		return err
	}
	fromAgent, err := checkFromAgent(s)
	if err != nil {
		return err
	}
	if _, err := netip.ParseAddr(s.Address); err != nil {
		return invalid("address", s.Address, "an IPv4 or IPv6 address")
	}
	if !slices.Contains(OSEditions, s.OSEdition) {
		return invalid("os_edition", s.OSEdition, strings.Join(OSEditions, ", "))
	}
	if err := checkFacts(s, fromAgent); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, a := range s.Adapters {
		attr := fmt.Sprintf("network_adapters[%d]", i)
		if a.Name == "" {
			return invalid(attr+".name", a.Name, "a non-empty adapter name")
		}
		if seen[a.Name] {
			return invalid(attr+".name", a.Name, "a name not used by another adapter of this host")
		}
		seen[a.Name] = true
		p, err := netip.ParsePrefix(a.Network)
		if err != nil || p.Masked() != p {
			return invalid(attr+".network", a.Network, "a network in CIDR form with no host bits set, e.g. 192.0.2.0/24")
		}
		ip, err := netip.ParseAddr(a.Address)
		if err != nil {
			return invalid(attr+".address", a.Address, "an IP address")
		}
		if !p.Contains(ip) {
			return invalid(attr+".address", a.Address, "an address inside the adapter's network "+a.Network)
		}
	}
	return nil
}

// checkHostName allows what a Windows computer name allows.
func checkHostName(name string) error {
	const allowed = "1 to 63 letters, digits and hyphens, not starting or ending with a hyphen"
	if len(name) < 1 || len(name) > 63 || name[0] == '-' || name[len(name)-1] == '-' {
		return invalid("name", name, allowed)
	}
	for _, r := range name {
		if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return invalid("name", name, allowed)
		}
	}
	return nil
}

func normalizeHost(s HostSpec) HostSpec {
	s.Features = slices.Clone(s.Features)
	slices.Sort(s.Features)
	s.Features = slices.Compact(s.Features)
	s.Adapters = slices.Clone(s.Adapters)
	s.FromAgent = slices.Clone(s.FromAgent)
	slices.Sort(s.FromAgent)
	s.FromAgent = slices.Compact(s.FromAgent)
	return s
}

// CreateHost registers a host. A host of that name must not exist.
func (e *Engine) CreateHost(ctx context.Context, s HostSpec) (Host, error) {
	if err := CheckHostSpec(s); err != nil {
		return Host{}, err
	}
	s, err := e.fillFromAgent(ctx, s, nil, "")
	if err != nil {
		return Host{}, err
	}
	h := Host{HostSpec: normalizeHost(s), CreatedAt: e.now().UTC()}
	rev, err := e.st.Commit(ctx, []store.Cmp{store.Absent(hostKey(s.Name))}, []store.Op{
		putJSON(hostKey(s.Name), h),
		e.eventOp(Event{Kind: EventHostRegistered, Subject: s.Name}),
	})
	if err != nil {
		if isConflict(err) {
			return Host{}, fmt.Errorf("host %q is already registered (import it instead): %w", s.Name, ErrExists)
		}
		return Host{}, err
	}
	h.Revision = rev
	return h, nil
}

// GetHost returns a registered host.
func (e *Engine) GetHost(ctx context.Context, name string) (Host, error) {
	var h Host
	rev, err := getJSON(ctx, e.st, hostKey(name), &h)
	if errors.Is(err, ErrNotFound) {
		return Host{}, fmt.Errorf("host %q is not registered: %w", name, ErrNotFound)
	}
	if err != nil {
		return Host{}, fmt.Errorf("host %q: %w", name, err)
	}
	h.Revision = rev
	e.noteCluster(h)
	return h, nil
}

// noteCluster remembers h's cluster for readNodeRecs.
func (e *Engine) noteCluster(h Host) {
	if h.Cluster == "" {
		e.clusterOf.Delete(h.Name)
	} else if c, ok := e.clusterOf.Load(h.Name); !ok || c != h.Cluster {
		e.clusterOf.Store(h.Name, h.Cluster)
	}
}

// nodeRecs is what UpdateHost reads: a host and, when it is a node, its
// cluster and the quorum and liveness records of the cluster's guard.
type nodeRecs struct {
	h                Host
	c                Cluster // zero when h is in no cluster
	quorum, liveness store.KV
}

// clusterHead is a cluster record without its validation report, which a
// node update never looks at: decoding the report is most of the cost of
// decoding the record, on every node update.
type clusterHead struct {
	ClusterSpec
	CreatedAt time.Time `json:"created_at"`
}

// clusterHeadRecord is clusterRecord without the validation report. Never
// write the Cluster it returns back: it would drop the report. The last
// record decoded per cluster is kept with its bytes: a record that did not
// change is not decoded again (it rarely changes; node updates are many).
func (e *Engine) clusterHeadRecord(name string, kv store.KV) (Cluster, error) {
	if !kv.Exists() {
		return Cluster{}, fmt.Errorf("cluster %q does not exist: %w", name, ErrNotFound)
	}
	c, err := memo(&e.heads, name, kv.Value, func() (Cluster, error) {
		var h clusterHead
		if err := decode(kv, &h); err != nil {
			return Cluster{}, fmt.Errorf("cluster %q: %w", name, err)
		}
		return Cluster{ClusterSpec: h.ClusterSpec, CreatedAt: h.CreatedAt}, nil
	})
	if err != nil {
		return Cluster{}, err
	}
	c.Nodes = slices.Clone(c.Nodes)
	c.Revision = kv.ModRevision
	return c, nil
}

// clusterHead reads cluster name without its validation report, for the
// many operations (VMs, placement) that only need its nodes and settings:
// GetCluster's errors, clusterHeadRecord's caching and its rule (never
// write the result back).
func (e *Engine) clusterHead(ctx context.Context, name string) (Cluster, error) {
	kv, err := e.st.Get(ctx, clusterKey(name))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Cluster{}, fmt.Errorf("cluster %q: %w", name, err)
	}
	return e.clusterHeadRecord(name, kv)
}

// readNodeRecs reads host name and, for a node, its cluster's records: in
// one snapshot when the host's cluster is known from an earlier read (the
// host record read with them decides whether the guess holds), else in a
// second read.
func (e *Engine) readNodeRecs(ctx context.Context, name string) (nodeRecs, error) {
	keys := []string{hostKey(name)}
	guess, _ := e.clusterOf.Load(name)
	if g, ok := guess.(string); ok {
		keys = append(keys, clusterRecKeys(g)...)
	}
	kvs, err := e.st.GetMany(ctx, keys...)
	if err != nil {
		return nodeRecs{}, fmt.Errorf("host %q: %w", name, err)
	}
	var r nodeRecs
	if !kvs[0].Exists() {
		e.clusterOf.Delete(name)
		return nodeRecs{}, fmt.Errorf("host %q is not registered: %w", name, ErrNotFound)
	}
	if err := decode(kvs[0], &r.h); err != nil {
		return nodeRecs{}, fmt.Errorf("host %q: %w", name, err)
	}
	r.h.Revision = kvs[0].ModRevision
	e.noteCluster(r.h)
	if r.h.Cluster == "" {
		return r, nil
	}
	recs := kvs[1:]
	if guess != r.h.Cluster {
		if recs, err = e.st.GetMany(ctx, clusterRecKeys(r.h.Cluster)...); err != nil {
			return nodeRecs{}, fmt.Errorf("cluster %q: %w", r.h.Cluster, err)
		}
	}
	if r.c, err = e.clusterHeadRecord(r.h.Cluster, recs[0]); err != nil {
		return nodeRecs{}, err
	}
	r.quorum, r.liveness = recs[1], recs[2]
	return r, nil
}

// ListHosts returns every registered host, by name.
func (e *Engine) ListHosts(ctx context.Context) ([]Host, error) {
	kvs, _, err := e.st.List(ctx, hostsPrefix)
	if err != nil {
		return nil, err
	}
	hosts := make([]Host, len(kvs))
	for i, kv := range kvs {
		if hosts[i], err = e.hostRecord(kv); err != nil {
			return nil, err
		}
	}
	return hosts, nil
}

// hostRecord decodes a host record, or copies the one decoded last from
// the same bytes.
func (e *Engine) hostRecord(kv store.KV) (Host, error) {
	h, err := memo(&e.hostRecs, kv.Key, kv.Value, func() (Host, error) {
		var h Host
		return h, decode(kv, &h)
	})
	if err != nil {
		return Host{}, err
	}
	h.Features, h.Adapters, h.FromAgent = slices.Clone(h.Features), slices.Clone(h.Adapters), slices.Clone(h.FromAgent)
	h.Revision = kv.ModRevision
	return h, nil
}

// UpdateHost changes a host's declared facts. A change that would make the
// host's cluster fail validation is refused. Putting a node in maintenance
// drains it (drain.go): refused before anything changes when one of its
// VMs fits on no other node; otherwise the flag is committed (new
// placements keep off the node) and every VM moves off it before
// UpdateHost returns.
func (e *Engine) UpdateHost(ctx context.Context, s HostSpec) (Host, error) {
	if err := CheckHostSpec(s); err != nil {
		return Host{}, err
	}
	var out Host
	var drainIn *Cluster
	err := e.retry(ctx, func() error {
		drainIn = nil
		r, err := e.readNodeRecs(ctx, s.Name)
		if err != nil {
			return err
		}
		h := r.h
		entering := s.Maintenance && !h.Maintenance
		filled, err := e.fillFromAgent(ctx, s, &h.HostSpec, h.Cluster)
		if err != nil {
			return err
		}
		next := normalizeHost(filled)
		judged := affectsValidation(h.HostSpec, next)
		h.HostSpec = next
		cmps := []store.Cmp{store.At(hostKey(s.Name), h.Revision)}
		if h.Cluster != "" {
			c := r.c
			// Hardware facts and maintenance only ever warn; anything that
			// can fail a test re-validates the cluster with the new host.
			var hosts map[string]Host
			if judged {
				if hosts, err = e.hostMap(ctx); err != nil {
					return err
				}
				hosts[h.Name] = h
				in, err := e.liveInput(ctx, validationInput(c.ClusterSpec, hosts))
				if err != nil {
					return err
				}
				rep := validate.Run(in)
				if failed := rep.Failed(); len(failed) > 0 {
					return fmt.Errorf("host %q is a node of cluster %q and this change would fail its validation: %w",
						s.Name, c.Name, &ValidationError{Cluster: c.Name, Failed: failed})
				}
			}
			qcmps, err := e.guardFrom(ctx, c, r.quorum, r.liveness, hosts, fmt.Sprintf("changing node %q", s.Name))
			if err != nil {
				return err
			}
			cmps = append(cmps, store.At(clusterKey(c.Name), c.Revision))
			cmps = append(cmps, qcmps...)
			if entering {
				if _, _, err := e.planDrain(ctx, c, []string{h.Name}, ReasonMaintenance); err != nil {
					return err
				}
			}
			if h.Maintenance {
				drainIn = &c
			}
		}
		rev, err := e.st.Commit(ctx, cmps, []store.Op{
			putJSON(hostKey(s.Name), h),
			e.eventOp(Event{Kind: EventHostUpdated, Cluster: h.Cluster, Subject: s.Name,
				Detail: map[string]string{"state": h.State()}}),
		})
		if err != nil {
			return err
		}
		h.Revision = rev
		out = h
		return nil
	})
	if err == nil && drainIn != nil {
		if derr := e.drainNodes(ctx, *drainIn, []string{s.Name}, ReasonMaintenance, nil); derr != nil {
			return out, fmt.Errorf("host %q is in maintenance (new placements keep off it) but its drain is not finished: %w; "+
				"the cluster's leader agent keeps draining it, or apply again", s.Name, derr)
		}
	}
	return out, err
}

// DeleteHost unregisters a host that is no node of any cluster.
func (e *Engine) DeleteHost(ctx context.Context, name string) error {
	return e.retry(ctx, func() error {
		h, err := e.GetHost(ctx, name)
		if err != nil {
			return err
		}
		if h.Cluster != "" {
			return fmt.Errorf("host %q is a node of cluster %q; remove it from the cluster's nodes first: %w",
				name, h.Cluster, ErrInUse)
		}
		_, err = e.st.Commit(ctx, []store.Cmp{store.At(hostKey(name), h.Revision)}, []store.Op{
			store.Del(hostKey(name)),
			forgetHostReport(name),
			e.eventOp(Event{Kind: EventHostRemoved, Subject: name}),
		})
		return err
	})
}

// affectsValidation reports whether changing a node from old to next can
// fail a cluster validation test (edition, features, addresses, adapters);
// processor, memory and maintenance changes can only warn.
func affectsValidation(old, next HostSpec) bool {
	return old.Address != next.Address || old.OSEdition != next.OSEdition ||
		!slices.Equal(old.Features, next.Features) || !slices.Equal(old.Adapters, next.Adapters)
}

func (e *Engine) hostMap(ctx context.Context) (map[string]Host, error) {
	hosts, err := e.ListHosts(ctx)
	if err != nil {
		return nil, err
	}
	m := make(map[string]Host, len(hosts))
	for _, h := range hosts {
		m[h.Name] = h
	}
	return m, nil
}
