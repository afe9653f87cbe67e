package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/placement"
)

// reconcileFailover is where node failure meets the cluster's VMs. It is
// called after every commit that changes a node's state (the lab's
// MarkHostDown / MarkHostUp, and the leader agent's heartbeat decisions),
// and by the leader agent on every tick for its cluster, so it is
// idempotent and works from the committed database alone (a crash between
// the node-state commit and this call is caught up on the next tick).
//
// Per docs/ARCHITECTURE.md, "Failure semantics":
//   - quorum lost: every running VM of the cluster is stopped (status
//     failed, reason "quorum lost"): no split brain;
//   - quorum regained: the VMs stopped for it start again;
//   - a node down while quorum holds: its VMs restart on surviving nodes
//     (the pin and preferred owners first, then any possible owner with
//     capacity), within each VM's max_failures per failure_period_hours;
//     past that, or with no node to take it, the VM stays failed with
//     status_reason saying why.
//
// Each move is an ownership change with a new fencing token and a
// vm.owner_changed event (reason "failover") in the same commit, which
// also leaves the VM's failback record (failback.go: the leader agent
// moves it back per its failback policy). Replaying the dead node's Kayo
// FS journal is the next mount's job (any node's).
func (e *Engine) reconcileFailover(ctx context.Context, cluster string) error {
	c, err := e.GetCluster(ctx, cluster)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	vms, err := e.ListVMs(ctx, cluster)
	if err != nil || len(vms) == 0 {
		return err
	}
	v, err := e.placementView(ctx, c)
	if err != nil {
		return err
	}
	up := map[string]bool{}
	for _, n := range v.state.Nodes {
		up[n.Name] = n.Up && n.InCluster
	}
	var errs []error
	for _, vm := range vms {
		if vm.Pending != nil {
			continue // its operation settles first
		}
		switch {
		case !v.quorum.Status.HasQuorum:
			if vm.Status == VMRunning || vm.Status == StatusMigrating {
				errs = append(errs, e.failVM(ctx, vm, quorumLostReason, true))
			}
		case !up[vm.Node]:
			errs = append(errs, e.failoverVM(ctx, c, vm))
		case vm.Status == StatusFailed && vm.StatusReason == quorumLostReason && vm.State == VMRunning:
			_, err := e.converge(ctx, vm, "")
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

const quorumLostReason = "quorum lost: the cluster stopped its VMs (no split brain); they start again when quorum returns"

// failVM stops vm where it is and marks it failed with reason.
func (e *Engine) failVM(ctx context.Context, vm VM, reason string, stop bool) error {
	if stop {
		drv, err := e.Hypervisor(ctx, vm.Cluster)
		if err != nil {
			return err
		}
		if err := drv.Stop(ctx, vm.Node, vm.Name, hypervisor.Token(vm.Token)); err != nil {
			return err
		}
	}
	_, err := e.vmCommit(ctx, vm.Cluster, vm.Name, func(t *vmTxn) error {
		if !t.exists || t.vm.Token != vm.Token || t.vm.Pending != nil {
			return errNoCommit
		}
		if t.vm.Status == StatusFailed && t.vm.StatusReason == reason {
			return errNoCommit
		}
		t.vm.Status, t.vm.StatusReason = StatusFailed, reason
		t.event(EventVMFailed, map[string]string{"node": t.vm.Node, "reason": reason, "token": fmt.Sprint(t.vm.Token)})
		return nil
	})
	return err
}

// failoverVM restarts vm, whose node is down, on a surviving node.
func (e *Engine) failoverVM(ctx context.Context, c Cluster, vm VM) error {
	now := e.now().UTC()
	var recent []time.Time
	for _, f := range vm.Failures {
		if now.Sub(f) < time.Duration(vm.FailurePeriodHours)*time.Hour {
			recent = append(recent, f)
		}
	}
	if len(recent) >= vm.MaxFailures {
		return e.failVM(ctx, vm, fmt.Sprintf("node %s is down and the VM already failed over %d time(s) in the last %d hours (max_failures = %d)",
			vm.Node, len(recent), vm.FailurePeriodHours, vm.MaxFailures), false)
	}
	from := vm.Node
	out, err := e.vmCommit(ctx, vm.Cluster, vm.Name, func(t *vmTxn) error {
		if !t.exists || t.vm.Token != vm.Token || t.vm.Pending != nil {
			return errNoCommit
		}
		v, err := e.placementView(ctx, c)
		if err != nil {
			return err
		}
		ps := placementSpec(t.vm.VMSpec, "")
		if ps.OwnerNode != "" {
			ps.PreferredOwners = append([]string{ps.OwnerNode}, ps.PreferredOwners...)
			ps.OwnerNode = ""
		}
		d, err := placement.Place(v.state, ps)
		if err != nil {
			return err
		}
		if d.Node == from {
			return errNoCommit
		}
		t.seed(v)
		t.cmps = append(t.cmps, v.guard...)
		t.cmps = append(t.cmps, v.hostCmp(d.Node))
		if err := t.release(from, t.vm.Name); err != nil {
			return err
		}
		if err := t.reserve(d.Node, t.vm.VMSpec, false); err != nil {
			return err
		}
		prev := t.vm.Token
		t.vm.Token++
		t.vm.Node = d.Node
		t.vm.Failures = append(slices.Clone(recent), now)
		t.vm.Status, t.vm.StatusReason = VMOff, ""
		t.ownerChanged(from, d.Node, prev, "failover", map[string]string{"node_down": from})
		t.ops = append(t.ops, e.failbackOp(vm.Cluster, failbackRecord{VM: vm.Name, From: from, To: d.Node,
			Reason: "failover", Token: t.vm.Token, At: now}))
		return nil
	})
	var nf *placement.NoFitError
	if errors.As(err, &nf) {
		return e.failVM(ctx, vm, "node "+from+" is down and no node can take the VM: "+nf.Error(), false)
	}
	if err != nil || out.Node == from {
		return err
	}
	drv, err := e.Hypervisor(ctx, vm.Cluster)
	if err != nil {
		return err
	}
	_ = drv.Discard(ctx, from, vm.Name) // the dead node's copy
	_, err = e.converge(ctx, out, "")
	return err
}
