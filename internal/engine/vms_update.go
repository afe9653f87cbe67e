package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor"
)

// UpdateVM changes a VM in place, in two steps that read top to bottom in
// this file:
//
//  1. beginUpdate, inside one commit: check the change, place the new spec
//     against the committed database and record the intent, either a
//     converge on the VM's node (beginConverge) or a migration to another
//     node (beginMigration: live, quick, or just the owner when off);
//  2. runPending, outside the commit: carry the intent through (the
//     migration protocol is migration.go's), stop the VM for a change that
//     needs a restart, rewrite its files, then converge it to the spec.
//
// Memory, processor, adapter and disk changes of a running VM shut it down
// and start it again when allow_restart (else they are refused:
// CheckVMChange); the VHD grows in place; state starts or stops it.
func (e *Engine) UpdateVM(ctx context.Context, s VMSpec) (VM, error) {
	ctx = withHVBuffer(ctx) // simulator writes ride on the VM's commits (vms_hv.go)
	if err := CheckVMSpec(s); err != nil {
		return VM{}, err
	}
	s = NormalizeVMSpec(s)
	if err := e.settleAbandoned(ctx, s.Cluster, s.Name); err != nil {
		return VM{}, err
	}
	c, err := e.clusterHead(ctx, s.Cluster)
	if err != nil {
		return VM{}, err
	}
	p := &Pending{ID: randomHex(8), Holder: e.newHolder(), StartedAt: e.now().UTC()}
	defer e.rt.running(p.ID)()
	ctx, asked := withAsked(ctx) // a request riding on the intent (sim_driver.go)
	defer asked.close()
	for {
		vm, err := e.vmCommit(ctx, s.Cluster, s.Name, func(t *vmTxn) error {
			return e.beginUpdate(ctx, t, c, s, p)
		})
		if errors.Is(err, errPairBusy) {
			// Another live migration holds this node pair: wait for it.
			select {
			case <-ctx.Done():
				return VM{}, fmt.Errorf("VM %q: waiting for the live migration between its nodes to finish: %w", s.Name, ctx.Err())
			case <-time.After(5 * time.Millisecond):
			}
			continue
		}
		if err != nil {
			return VM{}, err
		}
		if vm.Pending == nil || vm.Pending.ID != p.ID {
			return vm, nil // nothing to change
		}
		out, err := e.runPending(ctx, vm)
		if err != nil {
			if vm.Pending.Op == opMigrate {
				return VM{}, e.failMigration(ctx, s.Cluster, s.Name, p.ID, err)
			}
			return VM{}, err
		}
		return out, nil
	}
}

// beginUpdate checks the change of t's VM to s, places s, and records p as
// the VM's intent: a converge when the VM stays on its node, else a
// migration. It returns errNoCommit when nothing changes.
func (e *Engine) beginUpdate(ctx context.Context, t *vmTxn, c Cluster, s VMSpec, p *Pending) error {
	if !t.exists {
		return fmt.Errorf("VM %q of cluster %q does not exist: %w", s.Name, s.Cluster, ErrNotFound)
	}
	if t.vm.Pending != nil {
		return busyError(t.vm)
	}
	if err := CheckVMChange(t.vm, s); err != nil {
		return err
	}
	if vol, err := e.GetVolume(ctx, t.vm.Volume); err == nil {
		fileCmps, err := e.checkVMFiles(ctx, s, vol, &t.vm.VMSpec) // a new DVD's ISO (vms_disks.go)
		if err != nil {
			return err
		}
		t.cmps = append(t.cmps, fileCmps...)
	}
	addrs, err := t.switchRefs(c, s, t.vm.Adapters, t.vm.AdapterAddresses)
	if err != nil {
		return err
	}
	t.vm.AdapterAddresses = addrs

	// Placement: a pure decision over the committed database
	// (vms_placement.go); the guards make the commit fail if a host it
	// read changed meanwhile.
	v, err := e.placementView(ctx, c)
	if err != nil {
		return err
	}
	if !v.quorum.Status.HasQuorum {
		return &QuorumLostError{Cluster: c.Name, Status: v.quorum.Status, Action: "changing VM " + s.Name}
	}
	d, err := decide(v, s, &t.vm)
	if err != nil {
		return err
	}
	t.seed(v)
	t.cmps = append(t.cmps, v.guard...)

	running := t.vm.Status == VMRunning
	restarts := len(restartChanges(t.vm.VMSpec, s)) > 0
	old := t.vm.VMSpec
	// Data disks added at the end are written, then hot-plugged into a
	// running VM by the converge (vms_disks.go).
	p.Phase, p.Prior, p.Files = PhasePrepare, &old, restarts || dataDisksAdded(old, s)
	p.Restart = (running && restarts) || (running && s.State == VMOff)
	if d.Node == t.vm.Node {
		return e.beginConverge(ctx, t, v, s, p)
	}
	if running && !p.Restart && dataDisksAdded(old, s) {
		// A live migration's target would attach disks its source lacks.
		return &InputError{Attribute: "data_disks", Value: fmt.Sprint(len(s.DataDisks)), Detail: fmt.Sprintf("VM %q is running and "+
			"moves from %s to %s: add its data disks and move it in two applies", s.Name, t.vm.Node, d.Node)}
	}
	return e.beginMigration(t, v, s, p, d.Node, running)
}

// beginConverge records a change that keeps the VM on its node.
func (e *Engine) beginConverge(ctx context.Context, t *vmTxn, v *placementView, s VMSpec, p *Pending) error {
	if reflectSpecEqual(*p.Prior, s) && t.vm.Status == s.State {
		if err := e.agentDown(ctx, t.vm); err != nil {
			// Its reads failed (vms_observe.go): nothing can start it now.
			return fmt.Errorf("VM %q cannot start on %s: %w", s.Name, t.vm.Node, err)
		}
		return errNoCommit
	}
	p.Op = opConverge
	t.cmps = append(t.cmps, v.hostCmp(t.vm.Node))
	if err := t.reserve(t.vm.Node, s, false); err != nil {
		return err
	}
	t.vm.VMSpec = s
	t.vm.Pending = p
	t.event(EventVMUpdated, map[string]string{"node": t.vm.Node})
	return nil
}

// beginMigration records the intent of moving the VM to node to: the
// migration type, the target's memory reserved as incoming, the pair lock
// of a live migration (migration.go), the status "migrating" and an event.
func (e *Engine) beginMigration(t *vmTxn, v *placementView, s VMSpec, p *Pending, to string, running bool) error {
	typ, why := migrationType(s, running && !p.Restart, v.hosts[t.vm.Node], v.hosts[to])
	p.Op, p.Type, p.From, p.To, p.WasRunning = opMigrate, typ, t.vm.Node, to, running
	p.Reason = why
	if typ == MigrationLive {
		if err := e.takePairLock(t, p); err != nil {
			return err
		}
	}
	t.cmps = append(t.cmps, v.hostCmp(to))
	if err := t.reserve(to, s, true); err != nil {
		return err
	}
	t.vm.VMSpec = s
	t.vm.Pending = p
	t.vm.Status = StatusMigrating
	detail := map[string]string{"type": typ, "from": p.From, "to": p.To, "token": fmt.Sprint(t.vm.Token), "migration": p.ID}
	if why != "" {
		detail["why"] = why
	}
	t.event(EventVMMigrationStarted, detail)
	// On the simulator the source's pre-copy is asked in this commit.
	return e.askPreCopy(t, v, p)
}

// runPending carries the VM's pending operation (held by this process)
// through to the end: the migration, if any; a stop for a change that
// needs one; the files; then the converge to the spec (vms.go).
func (e *Engine) runPending(ctx context.Context, vm VM) (VM, error) {
	var err error
	if vm.Pending.Op == opMigrate {
		e.crashPoint(CrashAfterIntent)
		if vm, err = e.migrateForward(ctx, vm); err != nil {
			return vm, err
		}
		if vm.Pending == nil {
			return vm, nil
		}
	}
	if vm.Pending.Restart {
		drv, err := e.Hypervisor(ctx, vm.Cluster)
		if err != nil {
			return vm, err
		}
		if err := drv.Stop(ctx, vm.Node, vm.Name, hypervisor.Token(vm.Token)); err != nil {
			return vm, fmt.Errorf("stopping VM %q on %s for the change: %w", vm.Name, vm.Node, err)
		}
	}
	if vm.Pending.Files {
		if err := e.writeFiles(ctx, vm, false); err != nil {
			return vm, err
		}
	}
	return e.converge(ctx, vm, vm.Pending.ID)
}

// reflectSpecEqual reports whether two specs are the same change.
func reflectSpecEqual(a, b VMSpec) bool {
	return a.Cluster == b.Cluster && a.Volume == b.Volume && a.Name == b.Name && a.MemoryMB == b.MemoryMB &&
		a.ProcessorCount == b.ProcessorCount && a.VHD == b.VHD && slices.Equal(a.Adapters, b.Adapters) &&
		a.OwnerNode == b.OwnerNode && slices.Equal(a.PreferredOwners, b.PreferredOwners) &&
		(a.PossibleOwners == nil) == (b.PossibleOwners == nil) && slices.Equal(a.PossibleOwners, b.PossibleOwners) &&
		a.AntiAffinityClass == b.AntiAffinityClass && a.AntiAffinityMode == b.AntiAffinityMode &&
		a.Migration == b.Migration && a.State == b.State && a.AllowRestart == b.AllowRestart &&
		a.Failback == b.Failback && a.MaxFailures == b.MaxFailures && a.FailurePeriodHours == b.FailurePeriodHours &&
		slices.Equal(a.DataDisks, b.DataDisks) && (a.DVD == nil) == (b.DVD == nil) && (a.DVD == nil || *a.DVD == *b.DVD) &&
		slices.Equal(a.BootOrder, b.BootOrder)
}
