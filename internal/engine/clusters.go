package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/validate"
)

func isConflict(err error) bool { return errors.Is(err, store.ErrConflict) }

// Heartbeat timeout bounds, in seconds.
const (
	MinHeartbeatTimeout     = 1
	MaxHeartbeatTimeout     = 3600
	DefaultHeartbeatTimeout = 10
)

// CheckClusterSpec checks what is known without the database: the name, the
// node count, the hypervisor and the heartbeat timeout.
func CheckClusterSpec(s ClusterSpec) error {
	if err := validate.CheckName(s.Name); err != nil {
		return &InputError{Attribute: "name", Value: s.Name, Detail: err.Error()}
	}
	if n := len(s.Nodes); n < 1 || n > validate.MaxNodes {
		return &InputError{Attribute: "nodes", Value: fmt.Sprint(n),
			Detail: fmt.Sprintf("%d nodes given; a cluster has 1 to %d nodes", n, validate.MaxNodes)}
	}
	if s.Hypervisor != HypervisorSimulator && s.Hypervisor != HypervisorQEMU {
		return invalid("hypervisor", s.Hypervisor, `"simulator" or "qemu"`)
	}
	if s.HeartbeatTimeoutSeconds < MinHeartbeatTimeout || s.HeartbeatTimeoutSeconds > MaxHeartbeatTimeout {
		return invalid("heartbeat_timeout_seconds", fmt.Sprint(s.HeartbeatTimeoutSeconds),
			fmt.Sprintf("%d to %d", MinHeartbeatTimeout, MaxHeartbeatTimeout))
	}
	return nil
}

func normalizeCluster(s ClusterSpec) ClusterSpec {
	s.Nodes = slices.Clone(s.Nodes)
	slices.Sort(s.Nodes)
	return s
}

// validationInput converts the database's hosts for the pure validator.
func validationInput(s ClusterSpec, hosts map[string]Host) validate.Input {
	in := validate.Input{
		ClusterName:   s.Name,
		Hypervisor:    s.Hypervisor,
		StaticAddress: s.StaticAddress,
		Nodes:         s.Nodes,
		Hosts:         make(map[string]validate.Host, len(hosts)),
	}
	for name, h := range hosts {
		vh := validate.Host{
			Name:            h.Name,
			OSEdition:       h.OSEdition,
			ProcessorVendor: h.ProcessorVendor,
			ProcessorModel:  h.ProcessorModel,
			ProcessorCores:  h.ProcessorCores,
			MemoryMB:        h.MemoryMB,
			Features:        h.Features,
			FromAgent:       h.FromAgent,
		}
		vh.Address, _ = netip.ParseAddr(h.Address)
		for _, a := range h.Adapters {
			va := validate.Adapter{Name: a.Name}
			va.Network, _ = netip.ParsePrefix(a.Network)
			va.Address, _ = netip.ParseAddr(a.Address)
			vh.Adapters = append(vh.Adapters, va)
		}
		in.Hosts[name] = vh
	}
	return in
}

// validateAgainst runs validation of s over hosts, adding the checks that
// need the rest of the database: membership in another cluster and another
// cluster's address, unless ignoreOthers.
func (e *Engine) validateAgainst(ctx context.Context, s ClusterSpec, hosts map[string]Host, ignoreOthers bool) (validate.Report, error) {
	clusters, err := e.ListClusters(ctx)
	if err != nil {
		return validate.Report{}, err
	}
	in, err := e.liveInput(ctx, validationInput(s, hosts))
	if err != nil {
		return validate.Report{}, err
	}
	in.OtherClusterAddresses = map[string]string{}
	for _, c := range clusters {
		if c.Name != s.Name && !ignoreOthers {
			in.OtherClusterAddresses[c.Name] = c.StaticAddress
		}
	}
	rep := validate.Run(in)
	for _, n := range s.Nodes {
		if h, ok := hosts[n]; ok && !ignoreOthers && h.Cluster != "" && h.Cluster != s.Name {
			rep.Tests = append(rep.Tests, validate.Test{
				Category: "Inventory", Name: "Validate Cluster Membership", Result: validate.Failed, Attribute: "nodes",
				Message: fmt.Sprintf("host %q is already a node of cluster %q; a host belongs to one cluster", n, h.Cluster),
			})
		}
	}
	return rep, nil
}

// PlanCheck is the validation a plan can run against the committed
// database. Complete is false when some node is not registered yet (it may
// be created in the same apply): then only apply can judge.
type PlanCheck struct {
	Report   validate.Report
	Complete bool
	At       time.Time // when the report was made
}

// ValidateCluster runs cluster validation of s against the committed
// database without changing anything. With ignoreOtherClusters, hosts and
// addresses held by other clusters count as free: a plan that creates a
// cluster cannot tell whether the same apply destroys the other one first
// (a rename), so apply judges that.
func (e *Engine) ValidateCluster(ctx context.Context, s ClusterSpec, ignoreOtherClusters bool) (PlanCheck, error) {
	s = normalizeCluster(s)
	hosts, err := e.hostMap(ctx)
	if err != nil {
		return PlanCheck{}, err
	}
	complete := true
	for _, n := range s.Nodes {
		if _, ok := hosts[n]; !ok {
			complete = false
		}
	}
	rep, err := e.validateAgainst(ctx, s, hosts, ignoreOtherClusters)
	return PlanCheck{Report: rep, Complete: complete, At: e.now().UTC()}, err
}

// CreateCluster validates and forms a cluster. Any failed test refuses
// formation and nothing is written.
func (e *Engine) CreateCluster(ctx context.Context, s ClusterSpec) (Cluster, error) {
	if err := CheckClusterSpec(s); err != nil {
		return Cluster{}, err
	}
	s = normalizeCluster(s)
	var out Cluster
	err := e.retry(ctx, func() error {
		if _, err := e.GetCluster(ctx, s.Name); err == nil {
			return fmt.Errorf("cluster %q already exists (import it instead): %w", s.Name, ErrExists)
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		hosts, err := e.hostMap(ctx)
		if err != nil {
			return err
		}
		rep, err := e.validateAgainst(ctx, s, hosts, false)
		if err != nil {
			return err
		}
		if failed := rep.Failed(); len(failed) > 0 {
			return &ValidationError{Cluster: s.Name, Failed: failed}
		}
		c := Cluster{ClusterSpec: s, Validation: rep.Tests, ValidatedAt: e.now().UTC(), CreatedAt: e.now().UTC()}
		cmps := []store.Cmp{store.Absent(clusterKey(s.Name))}
		ops := []store.Op{putJSON(clusterKey(s.Name), c),
			e.eventOp(Event{Kind: EventClusterFormed, Cluster: s.Name, Subject: s.Name,
				Detail: map[string]string{"static_address": s.StaticAddress}})}
		for _, n := range s.Nodes {
			h := hosts[n]
			h.Cluster = s.Name
			cmps = append(cmps, store.At(hostKey(n), h.Revision))
			ops = append(ops, putJSON(hostKey(n), h))
		}
		ops = append(ops, livenessOp(s.Name, s.Nodes, hosts))
		rev, err := e.st.Commit(ctx, cmps, ops)
		if err != nil {
			return err
		}
		c.Revision = rev
		out = c
		return nil
	})
	return out, err
}

// GetCluster returns a formed cluster.
func (e *Engine) GetCluster(ctx context.Context, name string) (Cluster, error) {
	var c Cluster
	rev, err := getJSON(ctx, e.st, clusterKey(name), &c)
	if errors.Is(err, ErrNotFound) {
		return Cluster{}, fmt.Errorf("cluster %q does not exist: %w", name, ErrNotFound)
	}
	if err != nil {
		return Cluster{}, fmt.Errorf("cluster %q: %w", name, err)
	}
	c.Revision = rev
	return c, nil
}

// ListClusters returns every cluster, by name.
func (e *Engine) ListClusters(ctx context.Context) ([]Cluster, error) {
	cs, revs, err := listJSON[Cluster](ctx, e.st, clustersPrefix)
	if err != nil {
		return nil, err
	}
	for i := range cs {
		cs[i].Revision = revs[i]
	}
	return cs, nil
}

// UpdateCluster changes membership, address, hypervisor or heartbeat
// timeout in place. The new configuration is validated as a whole; added
// nodes join, removed nodes leave, in one commit. A removal that would
// lose quorum is refused; removed nodes are drained before they leave.
func (e *Engine) UpdateCluster(ctx context.Context, s ClusterSpec) (Cluster, error) {
	if err := CheckClusterSpec(s); err != nil {
		return Cluster{}, err
	}
	s = normalizeCluster(s)
	var out Cluster
	err := e.retry(ctx, func() error {
		c, qkv, lkv, err := e.readClusterRecs(ctx, s.Name)
		if err != nil {
			return err
		}
		if flagOnly(c.ClusterSpec, s) {
			// force_destroy alone: no membership, address or runtime
			// change, so no validation and no quorum needed (a cluster
			// without quorum must be able to say it may be torn down).
			if c.ForceDestroy == s.ForceDestroy {
				// Nothing to do (e.g. the node already evicted by its
				// kayo_host's destroy), but still no change without quorum.
				hosts, err := e.hostMap(ctx)
				if err != nil {
					return err
				}
				if _, err := e.guardFrom(ctx, c, qkv, lkv, hosts, "changing the cluster"); err != nil {
					return err
				}
				out = c
				return nil
			}
			next := c
			next.ForceDestroy = s.ForceDestroy
			rev, err := e.st.Commit(ctx, []store.Cmp{store.At(clusterKey(s.Name), c.Revision)}, []store.Op{
				putJSON(clusterKey(s.Name), next),
				e.eventOp(Event{Kind: EventClusterUpdated, Cluster: s.Name, Subject: s.Name,
					Detail: map[string]string{"force_destroy": fmt.Sprint(s.ForceDestroy)}})})
			if err != nil {
				return err
			}
			next.Revision = rev
			out = next
			return nil
		}
		hosts, err := e.hostMap(ctx)
		if err != nil {
			return err
		}
		rep, err := e.validateAgainst(ctx, s, hosts, false)
		if err != nil {
			return err
		}
		if failed := rep.Failed(); len(failed) > 0 {
			return &ValidationError{Cluster: s.Name, Failed: failed}
		}
		if err := e.checkHypervisorChange(ctx, c, s.Hypervisor); err != nil {
			return err
		}
		added, removed := diffNodes(c.Nodes, s.Nodes)
		// No change without quorum, and no membership change that loses it.
		qcmps, err := e.guardFrom(ctx, c, qkv, lkv, hosts, "changing the cluster")
		if err != nil {
			return err
		}
		if err := checkMembershipQuorum(c, s, hosts, removed, qkv); err != nil {
			return err
		}
		// Removed nodes are drained first (refused, with nothing moved,
		// when a VM fits nowhere else); the commit then requires them to
		// hold no VM, so one placed there meanwhile sends us round again.
		if len(removed) > 0 {
			if err := e.drainNodes(ctx, c, removed, ReasonNodeRemoval, qcmps); err != nil {
				return err
			}
		}
		next := Cluster{ClusterSpec: s, Validation: rep.Tests, ValidatedAt: e.now().UTC(), CreatedAt: c.CreatedAt}
		cmps := append([]store.Cmp{store.At(clusterKey(s.Name), c.Revision)}, qcmps...)
		for _, n := range removed {
			cmps = append(cmps, store.Absent(vmNodeKey(s.Name, n)))
		}
		ops := []store.Op{putJSON(clusterKey(s.Name), next),
			e.eventOp(Event{Kind: EventClusterUpdated, Cluster: s.Name, Subject: s.Name})}
		for _, n := range added {
			h := hosts[n]
			h.Cluster = s.Name
			cmps = append(cmps, store.At(hostKey(n), h.Revision))
			ops = append(ops, putJSON(hostKey(n), h),
				e.eventOp(Event{Kind: EventNodeAdded, Cluster: s.Name, Subject: n}))
		}
		for _, n := range removed {
			h, ok := hosts[n]
			if !ok || h.Cluster != s.Name {
				continue // already gone; nothing to release
			}
			h.Cluster = ""
			cmps = append(cmps, store.At(hostKey(n), h.Revision))
			ops = append(ops, putJSON(hostKey(n), h),
				e.eventOp(Event{Kind: EventNodeRemoved, Cluster: s.Name, Subject: n}))
		}
		ops = append(ops, livenessOp(s.Name, s.Nodes, hosts))
		rev, err := e.st.Commit(ctx, cmps, ops)
		if err != nil {
			return err
		}
		next.Revision = rev
		out = next
		return nil
	})
	if err == nil {
		// Volumes follow membership: added nodes mount, removed ones unmount.
		err = e.SyncClusterVolumes(ctx, s.Name)
	}
	return out, err
}

// DeleteCluster destroys a cluster; its hosts stay registered.
func (e *Engine) DeleteCluster(ctx context.Context, name string) error {
	return e.retry(ctx, func() error {
		c, err := e.GetCluster(ctx, name)
		if err != nil {
			return err
		}
		hosts, err := e.hostMap(ctx)
		if err != nil {
			return err
		}
		cmps := []store.Cmp{store.At(clusterKey(name), c.Revision)}
		// Its quorum configuration and leader lease go with it.
		ops := []store.Op{store.Del(clusterKey(name)), store.Del(quorumKey(name)), store.Del(leaseKey(name)),
			store.Del(lockKey(name)), store.Del(livenessKey(name)),
			e.eventOp(Event{Kind: EventClusterDestroyed, Cluster: name, Subject: name})}
		for _, n := range c.Nodes {
			if h, ok := hosts[n]; ok && h.Cluster == name {
				h.Cluster = ""
				cmps = append(cmps, store.At(hostKey(n), h.Revision))
				ops = append(ops, putJSON(hostKey(n), h))
			}
		}
		_, err = e.st.Commit(ctx, cmps, ops)
		return err
	})
}

// flagOnly reports whether next differs from old in nothing but
// ForceDestroy (nodes compared as normalized sets).
func flagOnly(old, next ClusterSpec) bool {
	old, next = normalizeCluster(old), normalizeCluster(next)
	old.ForceDestroy = next.ForceDestroy
	return old.Name == next.Name && slices.Equal(old.Nodes, next.Nodes) && old.StaticAddress == next.StaticAddress &&
		old.Hypervisor == next.Hypervisor && old.HeartbeatTimeoutSeconds == next.HeartbeatTimeoutSeconds
}

func diffNodes(old, next []string) (added, removed []string) {
	for _, n := range next {
		if !slices.Contains(old, n) {
			added = append(added, n)
		}
	}
	for _, n := range old {
		if !slices.Contains(next, n) {
			removed = append(removed, n)
		}
	}
	return added, removed
}
