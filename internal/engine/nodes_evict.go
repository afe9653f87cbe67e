package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Eviction: destroying a kayo_host that is still a node. Terraform
// destroys a host dropped from a for_each before it updates the cluster
// whose nodes referenced it, so the host's delete does the node removal
// itself, exactly as UpdateCluster does it for a node dropped from the
// cluster's nodes (validation of what remains, quorum check, drain,
// removal from the node list, volume mounts released). The cluster's
// update that follows then finds nothing left to remove.

// EvictionPlan says what evicting a node does.
type EvictionPlan struct {
	// Cluster is "" when the host is no node: nothing to evict.
	Cluster string
	Moves   []PlannedMove
	// After is the cluster's quorum status once the node is gone.
	After QuorumStatus
}

// evictionSpec is c's spec without host, or an error when host is the
// last node (destroying the cluster is the way out).
func evictionSpec(c Cluster, host string) (ClusterSpec, error) {
	s := c.ClusterSpec
	s.Nodes = slices.DeleteFunc(slices.Clone(c.Nodes), func(n string) bool { return n == host })
	if len(s.Nodes) == 0 {
		return s, fmt.Errorf("host %q is the last node of cluster %q; destroy the cluster (kayo_cluster %q) before the host: %w",
			host, c.Name, c.Name, ErrInUse)
	}
	return s, nil
}

// PlanEviction says what EvictNode(host) would do, judged against the
// committed database: the drain's moves and the quorum after, or the
// refusal (a *QuorumLostError, a *DrainError, a failed validation).
func (e *Engine) PlanEviction(ctx context.Context, host string) (EvictionPlan, error) {
	h, err := e.GetHost(ctx, host)
	if err != nil || h.Cluster == "" {
		return EvictionPlan{}, err
	}
	c, err := e.GetCluster(ctx, h.Cluster)
	if err != nil {
		return EvictionPlan{}, err
	}
	s, err := evictionSpec(c, host)
	if err != nil {
		return EvictionPlan{Cluster: c.Name}, err
	}
	moves, err := e.PlanNodeRemoval(ctx, s)
	if err != nil {
		return EvictionPlan{Cluster: c.Name}, err
	}
	q, err := e.GetQuorum(ctx, c.Name)
	if err != nil {
		return EvictionPlan{Cluster: c.Name}, err
	}
	hosts, err := e.hostMap(ctx)
	if err != nil {
		return EvictionPlan{Cluster: c.Name}, err
	}
	after, err := EvaluateQuorum(q.QuorumSpec, clusterNodes(Cluster{ClusterSpec: s}, hosts))
	return EvictionPlan{Cluster: c.Name, Moves: moves, After: after}, err
}

// EvictNode removes host from the cluster it is a node of, as removing it
// from the cluster's nodes does; it returns the cluster's name ("" when
// the host was no node). Refused, with nothing moved, when the removal
// would lose quorum, when a VM fits on no other node, or when host is the
// cluster's last node. A node that is down is evicted the same way once
// its VMs have failed over (the cluster keeps quorum without it).
func (e *Engine) EvictNode(ctx context.Context, host string) (string, error) {
	h, err := e.GetHost(ctx, host)
	if err != nil || h.Cluster == "" {
		return "", err
	}
	c, err := e.GetCluster(ctx, h.Cluster)
	if err != nil {
		return "", err
	}
	s, err := evictionSpec(c, host)
	if err != nil {
		return c.Name, err
	}
	// UpdateCluster re-reads the cluster in its own retry loop and
	// commits only against the revision it read; a concurrent change of
	// the node list makes its commit fail and it starts again from the
	// new list, which may no longer hold host: that is the same outcome.
	if _, err := e.UpdateCluster(ctx, s); err != nil {
		return c.Name, fmt.Errorf("evicting host %q from cluster %q: %w", host, c.Name, err)
	}
	return c.Name, nil
}

// checkHypervisorChange refuses changing cluster c's hypervisor to next
// while VMs run there: their guests live in the old runtime, which the
// new one neither sees nor can migrate from.
func (e *Engine) checkHypervisorChange(ctx context.Context, c Cluster, next string) error {
	if c.Hypervisor == next {
		return nil
	}
	vms, err := e.ListVMs(ctx, c.Name)
	if err != nil {
		return err
	}
	var running []string
	for _, vm := range vms {
		if vm.State == VMRunning {
			running = append(running, vm.Name)
		}
	}
	if len(running) == 0 {
		return nil
	}
	slices.Sort(running)
	return &InputError{Attribute: "hypervisor", Value: next, Detail: fmt.Sprintf(
		"cannot change from %q to %q while VMs run on cluster %q: %s (their guests run in the %s runtime, which %s "+
			"can neither see nor migrate from). Set state = \"off\" on those VMs (or destroy them) and apply, then "+
			"change hypervisor and set them running again", c.Hypervisor, next, c.Name, strings.Join(running, ", "),
		c.Hypervisor, next)}
}

// CheckHypervisorChange is checkHypervisorChange for the plan: cluster's
// hypervisor changed to next, judged against the committed database.
func (e *Engine) CheckHypervisorChange(ctx context.Context, cluster, next string) error {
	c, err := e.GetCluster(ctx, cluster)
	if err != nil {
		return err
	}
	return e.checkHypervisorChange(ctx, c, next)
}
