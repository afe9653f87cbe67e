package engine

import (
	"context"
	"errors"
	"fmt"
)

// VMPlan is what applying a spec to a VM would do, judged against the
// committed cluster database (what a plan can know).
type VMPlan struct {
	// Judged is false when the cluster is not committed yet (created in
	// the same apply): apply judges.
	Judged bool
	// Exists: the VM exists (an update); Changed: its spec changes.
	Exists, Changed bool
	// Current is the VM's record as read (nil before it exists). A plan
	// made at apply, after something else moved the VM (a drain, the
	// leader, another run), differs from the prior state the caller holds.
	Current *VM
	// Node is where the VM will run. Pinned: Node is the owner_node pin,
	// so it is certain; otherwise it is the scheduler's choice today,
	// which apply may revise.
	Node   string
	Pinned bool
	// Move: the VM migrates From → To, Type live, quick or offline; Why
	// says why not live when it is not. Summary names the VM.
	Move                bool
	From, To, Type, Why string
	Summary             string
	// Stay: a pinned VM stays away from its pin (down, maintenance);
	// StayReason says why, for a warning.
	Stay       bool
	StayReason string
	// Paths are the VM's files when its volume is committed (else zero).
	Paths VMPaths
	// ClusterNodes is the number of the cluster's nodes.
	ClusterNodes int
	// Warnings: what apply may still refuse (a template not on the
	// volume yet), one sentence each.
	Warnings []string
}

// PlanVM judges spec s against the committed database without changing
// anything: the checks of a change (CheckVMChange), quorum, and placement.
// A placement newly asked for that cannot work is an InputError naming
// the attribute (or a QuorumLostError).
func (e *Engine) PlanVM(ctx context.Context, s VMSpec) (VMPlan, error) {
	if err := CheckVMSpec(s); err != nil {
		return VMPlan{}, err
	}
	s = NormalizeVMSpec(s)
	// The cluster, volume and VM records in one read.
	kvs, err := e.st.GetMany(ctx, clusterKey(s.Cluster), volumeKey(s.Volume), vmKey(s.Cluster, s.Name))
	if err != nil {
		return VMPlan{}, err
	}
	c, err := e.clusterHeadRecord(s.Cluster, kvs[0])
	if errors.Is(err, ErrNotFound) {
		return VMPlan{}, nil
	}
	if err != nil {
		return VMPlan{}, err
	}
	vol, err := e.volumeRecord(s.Volume, kvs[1])
	switch {
	case errors.Is(err, ErrNotFound):
		// created in this apply, or a wrong id: apply judges
	case err != nil:
		return VMPlan{}, err
	case vol.Cluster != s.Cluster:
		return VMPlan{}, &InputError{Attribute: "volume_id", Value: s.Volume,
			Detail: fmt.Sprintf("volume %s (%s) belongs to cluster %q, not %q", vol.DriveLetter, vol.ID, vol.Cluster, s.Cluster)}
	}
	plan := VMPlan{Judged: true, ClusterNodes: len(c.Nodes)}
	if err == nil {
		if paths, err := PathsFor(vol.DriveLetter, s.Name); err == nil {
			plan.Paths = paths
		}
	}
	var vm *VM
	rec, err := vmRecord(s.Cluster, s.Name, kvs[2])
	switch {
	case err == nil:
		vm = &rec
		plan.Exists, plan.Current = true, &rec
		if err := CheckVMChange(rec, s); err != nil {
			return VMPlan{}, err
		}
		plan.Changed = !reflectSpecEqual(rec.VMSpec, s)
	case errors.Is(err, ErrNotFound):
		plan.Changed = true
	default:
		return VMPlan{}, err
	}
	if plan.Paths.VHD != "" {
		// The template and ISO it names, when its volume is committed
		// (files put in the same apply are judged by apply).
		var old *VMSpec
		if vm != nil {
			old = &vm.VMSpec
		}
		_, warns, err := e.checkVMFilesAt(ctx, s, vol, old, true)
		if err != nil {
			return VMPlan{}, err
		}
		plan.Warnings = warns
	}
	var oldAdapters []VMAdapter
	if vm != nil {
		oldAdapters = vm.Adapters
	}
	if _, _, err := e.checkVMAdapters(ctx, c, s, oldAdapters); err != nil {
		return VMPlan{}, err
	}
	v, err := e.placementView(ctx, c)
	if err != nil {
		return VMPlan{}, err
	}
	d, err := decide(v, s, vm)
	if err != nil {
		if vm != nil && !plan.Changed {
			// Nothing asked anew: keep the VM where it is, and say why.
			plan.Node, plan.Stay, plan.StayReason = vm.Node, true, err.Error()
			return plan, nil
		}
		return VMPlan{}, err
	}
	plan.Node, plan.Pinned = d.Node, s.OwnerNode != "" && !d.Stay
	plan.Stay, plan.StayReason = d.Stay, d.StayReason
	if vm != nil && d.Node != vm.Node {
		running := vm.Status == VMRunning && s.State == VMRunning && !(len(restartChanges(vm.VMSpec, s)) > 0)
		plan.Move, plan.From, plan.To = true, vm.Node, d.Node
		plan.Type, plan.Why = migrationType(s, running, v.hosts[vm.Node], v.hosts[d.Node])
		plan.Summary = MoveSummary(s.Name, plan.Type, plan.From, plan.To)
	}
	if (plan.Changed || plan.Move) && !v.quorum.Status.HasQuorum {
		return VMPlan{}, &QuorumLostError{Cluster: c.Name, Status: v.quorum.Status, Action: "changing VM " + s.Name}
	}
	return plan, nil
}
