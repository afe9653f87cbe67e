package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/placement"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// Drains. A node put in maintenance (kayo_host.maintenance = true) or
// removed from its cluster is drained first: every VM it owns moves to
// another node, live when it runs and both nodes have the same processor
// vendor, quick when not, just its owner when it is off. Placement's
// Evacuate decides where, for all of the node's VMs at once (VMs with
// placement wishes first, larger ones first), so the plan a user sees
// (PlanDrain) is the apply's; apply re-places any VM whose planned target
// no longer fits. A drain that cannot place every VM is refused before
// anything moves, naming each VM and why (DrainError).
//
// Each move is an ordinary migration (intent, transfer, ownership switch
// with a new fencing token, completion), started here with the target
// chosen by the drain and the VM's configuration unchanged, so it produces
// no Terraform diff for an unpinned VM; a pinned VM away from its pin gets
// a plan warning while the pin is in maintenance, and a plan that moves it
// back once maintenance ends (docs/ARCHITECTURE.md, "Migration, drift and plans").

// Drain reasons (the "reason" of vm.migration_started events).
const (
	ReasonMaintenance = "maintenance"
	ReasonNodeRemoval = "node removal"
	ReasonFailback    = "failback"
)

// PlannedMove is one VM a drain (or failback) moves.
type PlannedMove struct {
	VM   string `json:"vm"`
	From string `json:"from"`
	To   string `json:"to"`
	// Type is live, quick or offline; Why says why not live when not.
	Type string `json:"type"`
	Why  string `json:"why,omitempty"`
	// Pinned: the VM's owner_node is From (it moves back when From can
	// take it again, or must be re-pinned when From leaves the cluster).
	Pinned bool   `json:"pinned,omitempty"`
	Reason string `json:"reason"`
}

// Summary is the plan warning's one-line summary, naming the VM:
// "WEB01 will be live-migrated from Y-21-2k8x64 to Y-22-2k8x64 (maintenance)".
func (m PlannedMove) Summary() string {
	return MoveSummary(m.VM, m.Type, m.From, m.To) + " (" + m.Reason + ")"
}

// Misfit is a VM a drain cannot place, and why.
type Misfit struct {
	VM   string
	Node string
	Why  string
}

// PlanDrain says what draining nodes of cluster would do, against the
// committed database, without changing anything: the moves in order, or a
// *DrainError naming every VM that fits nowhere. reason is
// ReasonMaintenance or ReasonNodeRemoval.
func (e *Engine) PlanDrain(ctx context.Context, cluster string, nodes []string, reason string) ([]PlannedMove, error) {
	c, err := e.GetCluster(ctx, cluster)
	if err != nil {
		return nil, err
	}
	moves, _, err := e.planDrain(ctx, c, nodes, reason)
	return moves, err
}

// planDrain places every VM owned by one of nodes elsewhere, the nodes
// themselves excluded (as in maintenance). It also returns the VMs with an
// operation in progress on those nodes (settled before moving).
func (e *Engine) planDrain(ctx context.Context, c Cluster, nodes []string, reason string) ([]PlannedMove, []VM, error) {
	vms, err := e.ListVMs(ctx, c.Name)
	if err != nil {
		return nil, nil, err
	}
	byNode := map[string][]VM{}
	var busy []VM
	for _, vm := range vms {
		on := slices.Contains(nodes, vm.Node)
		if p := vm.Pending; p != nil {
			if on || slices.Contains(nodes, p.To) {
				busy = append(busy, vm)
			}
			continue
		}
		if on {
			byNode[vm.Node] = append(byNode[vm.Node], vm)
		}
	}
	if len(byNode) == 0 {
		return nil, busy, nil
	}
	v, err := e.placementView(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	for i := range v.state.Nodes {
		if slices.Contains(nodes, v.state.Nodes[i].Name) {
			v.state.Nodes[i].Maintenance = true
		}
	}
	pl, err := placement.NewPlanner(v.state)
	if err != nil {
		return nil, nil, err
	}
	var moves []PlannedMove
	var misfits []Misfit
	for _, n := range slices.Sorted(slices.Values(nodes)) {
		list := byNode[n]
		if len(list) == 0 {
			continue
		}
		specs := make([]placement.Spec, len(list))
		named := map[string]VM{}
		for i, vm := range list {
			specs[i] = placementSpec(vm.VMSpec, vm.Node)
			named[vm.Name] = vm
		}
		ms, failed, err := pl.Evacuate(n, specs)
		if err != nil {
			return nil, nil, err
		}
		for _, m := range ms {
			vm := named[m.VM]
			typ, why := migrationType(vm.VMSpec, vm.Status == VMRunning, v.hosts[m.From], v.hosts[m.To])
			moves = append(moves, PlannedMove{VM: m.VM, From: m.From, To: m.To, Type: typ, Why: why,
				Pinned: vm.OwnerNode == m.From, Reason: reason})
		}
		for _, f := range failed {
			var nf *placement.NoFitError
			name, why := "", f.Error()
			if errors.As(f, &nf) {
				name = nf.VM
				var parts []string
				for _, r := range nf.Rejections {
					if !slices.Contains(nodes, r.Node) {
						parts = append(parts, r.String())
					}
				}
				why = "no other node can run it"
				if len(parts) > 0 {
					why = strings.Join(parts, "; ")
				}
			}
			misfits = append(misfits, Misfit{VM: name, Node: n, Why: why})
		}
	}
	if len(misfits) > 0 {
		attr := "maintenance"
		if reason == ReasonNodeRemoval {
			attr = "nodes"
		}
		return moves, busy, &DrainError{Attribute: attr, Cluster: c.Name, Nodes: slices.Sorted(slices.Values(nodes)), Reason: reason, Misfits: misfits}
	}
	return moves, busy, nil
}

// drainNodes moves every VM off nodes of cluster, as planned by planDrain,
// re-planning when a move finds its target taken meanwhile and waiting for
// operations in progress. extra comparisons go into every intent commit
// (the leader's lease).
func (e *Engine) drainNodes(ctx context.Context, c Cluster, nodes []string, reason string, extra []store.Cmp) error {
	const rounds = 8
	var lastErr error
	for round := 0; round < rounds; round++ {
		moves, busy, err := e.planDrain(ctx, c, nodes, reason)
		if err != nil {
			return err
		}
		if len(moves) == 0 && len(busy) == 0 {
			return nil
		}
		for _, vm := range busy {
			if err := e.settleAbandoned(ctx, vm.Cluster, vm.Name); err != nil && !errors.Is(err, ErrBusy) {
				return err
			}
		}
		for _, m := range moves {
			_, err := e.migrateTo(ctx, c, m.VM, m.To, m.From, reason, extra)
			switch {
			case err == nil:
			case errors.Is(err, ErrBusy), errors.Is(err, ErrNotFound), errors.Is(err, errTargetTaken), errors.Is(err, ErrConflict):
				lastErr = err // re-plan in the next round
			default:
				return fmt.Errorf("draining %s for %s: moving VM %s to %s: %w", strings.Join(nodes, ", "), reason, m.VM, m.To, err)
			}
		}
		if round > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(round) * 20 * time.Millisecond):
			}
		}
	}
	return fmt.Errorf("draining %s of cluster %q for %s: VMs are still on it after %d rounds (last: %v); retry",
		strings.Join(nodes, ", "), c.Name, reason, rounds, lastErr)
}

// migrateTo migrates VM name of c from node from to node to without
// changing its configuration (a drain or a failback), through the same
// phases as any migration. It does nothing when the VM is no longer on
// from. reason is recorded in vm.migration_started; extra comparisons join
// the intent commit. A drain (not a failback) leaves a failback record.
func (e *Engine) migrateTo(ctx context.Context, c Cluster, name, to, from, reason string, extra []store.Cmp) (VM, error) {
	p := &Pending{ID: randomHex(8), Holder: e.newHolder(), StartedAt: e.now().UTC()}
	defer e.rt.running(p.ID)()
	for {
		vm, err := e.vmCommit(ctx, c.Name, name, func(t *vmTxn) error {
			if !t.exists {
				return fmt.Errorf("VM %q of cluster %q does not exist: %w", name, c.Name, ErrNotFound)
			}
			if t.vm.Pending != nil {
				return busyError(t.vm)
			}
			if t.vm.Node != from || t.vm.Node == to {
				return errNoCommit
			}
			v, err := e.placementView(ctx, c)
			if err != nil {
				return err
			}
			if !v.quorum.Status.HasQuorum {
				return &QuorumLostError{Cluster: c.Name, Status: v.quorum.Status, Action: fmt.Sprintf("moving VM %s (%s)", name, reason)}
			}
			ps := placementSpec(t.vm.VMSpec, t.vm.Node)
			ps.OwnerNode = to
			if _, err := placement.Place(v.state, ps); err != nil {
				return fmt.Errorf("VM %s to %s: %v: %w", name, to, err, errTargetTaken)
			}
			t.seed(v)
			t.cmps = append(t.cmps, v.guard...)
			t.cmps = append(t.cmps, extra...)
			running := t.vm.Status == VMRunning
			typ, why := migrationType(t.vm.VMSpec, running, v.hosts[t.vm.Node], v.hosts[to])
			old := t.vm.VMSpec
			p.Phase, p.Prior = PhasePrepare, &old
			p.Op, p.Type, p.From, p.To, p.WasRunning, p.Reason = opMigrate, typ, t.vm.Node, to, running, why
			if typ == MigrationLive {
				if err := e.takePairLock(t, p); err != nil {
					return err
				}
			}
			t.cmps = append(t.cmps, v.hostCmp(to))
			if err := t.reserve(to, t.vm.VMSpec, true); err != nil {
				return err
			}
			t.vm.Pending = p
			t.vm.Status = StatusMigrating
			detail := map[string]string{"type": typ, "from": p.From, "to": p.To, "token": fmt.Sprint(t.vm.Token),
				"migration": p.ID, "reason": reason}
			if why != "" {
				detail["why"] = why
			}
			t.event(EventVMMigrationStarted, detail)
			if reason != ReasonFailback {
				t.ops = append(t.ops, e.failbackOp(c.Name, failbackRecord{VM: name, From: p.From, To: to,
					Reason: reason, Token: t.vm.Token + 1, At: e.now().UTC()}))
			}
			return nil
		})
		if errors.Is(err, errPairBusy) {
			select {
			case <-ctx.Done():
				return VM{}, fmt.Errorf("VM %q: waiting for the live migration between its nodes to finish: %w", name, ctx.Err())
			case <-time.After(5 * time.Millisecond):
			}
			continue
		}
		if err != nil {
			return VM{}, err
		}
		if vm.Pending == nil || vm.Pending.ID != p.ID {
			return vm, nil // nothing to move
		}
		out, err := e.runPending(ctx, vm)
		if err != nil {
			return VM{}, e.failMigration(ctx, c.Name, name, p.ID, err)
		}
		return out, nil
	}
}

// reconcileDrains, run by the leader agent, finishes drains an apply left
// (a process killed midway, or VMs that could not move then): VMs owned by
// a node in maintenance move off it when they fit elsewhere. VMs that fit
// nowhere stay (the apply that set maintenance said so).
func (e *Engine) reconcileDrains(ctx context.Context, c Cluster, extra []store.Cmp) error {
	hosts, err := e.hostMap(ctx)
	if err != nil {
		return err
	}
	var nodes []string
	for _, n := range c.Nodes {
		if h, ok := hosts[n]; ok && h.Maintenance && !h.Down {
			nodes = append(nodes, n)
		}
	}
	if len(nodes) == 0 {
		return nil
	}
	if err := e.RequireQuorum(ctx, c.Name, "draining"); err != nil {
		return nil // nothing moves without quorum; failover has stopped the VMs
	}
	moves, _, err := e.planDrain(ctx, c, nodes, ReasonMaintenance)
	var de *DrainError
	if err != nil && !errors.As(err, &de) {
		return err
	}
	var errs []error
	for _, m := range moves {
		if _, err := e.migrateTo(ctx, c, m.VM, m.To, m.From, ReasonMaintenance, extra); err != nil &&
			!errors.Is(err, ErrBusy) && !errors.Is(err, errTargetTaken) && !errors.Is(err, ErrConflict) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// PlanNodeRemoval says what changing cluster c to next does to the nodes
// it removes: the drain's moves, or a *QuorumLostError when the removal
// would lose quorum, or a *DrainError naming the VMs that fit nowhere.
func (e *Engine) PlanNodeRemoval(ctx context.Context, next ClusterSpec) ([]PlannedMove, error) {
	next = normalizeCluster(next)
	c, qkv, lkv, err := e.readClusterRecs(ctx, next.Name)
	if err != nil {
		return nil, err
	}
	_, removed := diffNodes(c.Nodes, next.Nodes)
	if len(removed) == 0 {
		return nil, nil
	}
	hosts, err := e.hostMap(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := e.guardFrom(ctx, c, qkv, lkv, hosts, "changing the cluster"); err != nil {
		return nil, err
	}
	if err := checkMembershipQuorum(c, next, hosts, removed, qkv); err != nil {
		return nil, err
	}
	moves, _, err := e.planDrain(ctx, c, removed, ReasonNodeRemoval)
	return moves, err
}
