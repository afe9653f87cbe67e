package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// Migration. A change that moves a VM runs between an intent commit and a
// completion commit (docs/ARCHITECTURE.md, "Intents"):
//
//	prepare      intent: new spec, Pending{migrate}, memory reserved on the
//	             target (marked incoming), live pair lock, event
//	             vm.migration_started. Nothing has moved.
//	transferred  live: memory pre-copied in rounds, the source paused and the
//	             rest copied (stop-and-copy); quick: state saved to
//	             <NAME>\<NAME>.vsv on the shared volume; off: nothing.
//	switched     ownership commit: Node = target, Token + 1, the source's
//	             reservation released, event vm.owner_changed with the token.
//	completed    target resumed (live) or restored (quick), source copy
//	             discarded, event vm.migration_completed with duration and
//	             downtime; last_migration recorded.
//
// A process killed before the ownership commit leaves the VM its source's:
// the next call rolls back (the source resumes or restores its saved
// state). Killed after it, the target owns the VM: the next call rolls
// forward. Either way exactly one node owns the VM at every instant, and
// the hypervisor refuses the stale token of a process that lost it.

// crashPoint calls the engine's migration hook (crash tests) at a phase
// boundary.
func (e *Engine) crashPoint(phase string) {
	if h := e.migrationHook; h != nil {
		h(phase)
	}
}

// Crash points, in order.
const (
	CrashAfterIntent   = "after-intent"
	CrashAfterTransfer = "after-transfer"
	CrashAfterSwitch   = "after-switch"
	CrashAfterResume   = "after-resume"
)

// CrashPoints lists the migration's crash points in order.
var CrashPoints = []string{CrashAfterIntent, CrashAfterTransfer, CrashAfterSwitch, CrashAfterResume}

type progressKey struct{}

// ProgressFunc receives progress of long VM operations.
type ProgressFunc func(vm string, p hypervisor.Progress)

// WithProgress returns ctx carrying fn, told the phases, rounds and
// percentages of migrations.
func WithProgress(ctx context.Context, fn ProgressFunc) context.Context {
	return context.WithValue(ctx, progressKey{}, fn)
}

func progressOf(ctx context.Context, vm string) func(hypervisor.Progress) {
	fn, _ := ctx.Value(progressKey{}).(ProgressFunc)
	return func(p hypervisor.Progress) {
		if fn != nil {
			fn(vm, p)
		}
	}
}

// pairLock is held by the one live migration of a source/target pair.
type pairLock struct {
	VM        string `json:"vm"`
	PendingID string `json:"pending_id"`
	Holder    Holder `json:"holder"`
}

func (e *Engine) takePairLock(t *vmTxn, p *Pending) error {
	key := vmMigLockKey(t.cluster, p.From, p.To)
	var lk pairLock
	rev, err := getJSON(t.ctx, e.st, key, &lk)
	switch {
	case errors.Is(err, ErrNotFound):
		t.cmps = append(t.cmps, store.Absent(key))
	case err != nil:
		return err
	case e.abandoned(&Pending{ID: lk.PendingID, Holder: lk.Holder}):
		t.cmps = append(t.cmps, store.At(key, rev))
	default:
		return errPairBusy
	}
	t.ops = append(t.ops, putJSON(key, pairLock{VM: t.vm.Name, PendingID: p.ID, Holder: p.Holder}))
	return nil
}

// dropPairLock deletes the pair lock if pendingID still holds it.
func (e *Engine) dropPairLock(t *vmTxn, p *Pending) error {
	if p.Type != MigrationLive {
		return nil
	}
	key := vmMigLockKey(t.cluster, p.From, p.To)
	var lk pairLock
	rev, err := getJSON(t.ctx, e.st, key, &lk)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if lk.PendingID == p.ID {
		t.cmps = append(t.cmps, store.At(key, rev))
		t.ops = append(t.ops, store.Del(key))
	}
	return nil
}

// switchOwner makes the migration's target the VM's owner: a new token
// (which fences the source), the reservation moved, PhaseSwitched.
func switchOwner(t *vmTxn, p *Pending) error {
	prev := t.vm.Token
	t.vm.Token++
	t.vm.Node = p.To
	t.vm.Pending.Phase = PhaseSwitched
	if err := t.release(p.From, t.vm.Name); err != nil {
		return err
	}
	if err := t.reserve(p.To, t.vm.VMSpec, false); err != nil {
		return err
	}
	t.ownerChanged(p.From, p.To, prev, "migration", map[string]string{"migration": p.ID, "type": p.Type})
	return nil
}

// migrateForward runs a migration from whatever phase it reached.
func (e *Engine) migrateForward(ctx context.Context, vm VM) (VM, error) {
	p := vm.Pending
	drv, err := e.Hypervisor(ctx, vm.Cluster)
	if err != nil {
		return vm, err
	}
	tok := hypervisor.Token(vm.Token)
	prog := progressOf(ctx, vm.Name)
	paths, err := PathsFor(vm.DriveLetter, vm.Name)
	if err != nil {
		return vm, err
	}
	var resume *pendingWork // the target's resume, asked in the switch's commit
	if p.Phase == PhasePrepare {
		if vm.Pending.Restart && p.WasRunning {
			// Memory/processor change with allow_restart: shut down first,
			// then the move is only an owner change.
			if err := drv.Stop(ctx, p.From, vm.Name, tok); err != nil {
				return vm, err
			}
		}
		var live *hypervisor.LiveResult
		var saveMs int64
		switch p.Type {
		case MigrationLive:
			var res hypervisor.LiveResult
			if w := askedOf(ctx).take(p.ID); w != nil && simOf(drv) != nil {
				// Asked in the intent's commit (askPreCopy).
				var out simCallOutcome
				r, werr := w.await(ctx, vm.Revision)
				out, err = simOf(drv).outcome(ctx, w.node, w.req, r, werr, prog)
				res = out.Live
			} else {
				hosts, herr := e.hostMap(ctx)
				if herr != nil {
					return vm, herr
				}
				from, to := hosts[p.From], hosts[p.To]
				res, err = drv.PreCopy(ctx, hypervisor.Node{Name: p.From, ProcessorVendor: from.ProcessorVendor},
					hypervisor.Node{Name: p.To, ProcessorVendor: to.ProcessorVendor}, vm.hvVM(), tok, prog)
			}
			if err != nil {
				return vm, fmt.Errorf("live migration of VM %q from %s to %s: %w", vm.Name, p.From, p.To, err)
			}
			live = &res
		case MigrationQuick:
			// The source's agent saves it on its own mount of the volume.
			r, err := drv.Save(ctx, p.From, vm.Name, tok, StateRef{Volume: vm.Volume, Path: paths.VolState}, prog)
			saveMs = r.DurationMs
			if err != nil {
				return vm, fmt.Errorf("quick migration of VM %q: saving its state to %s: %w", vm.Name, paths.State, err)
			}
		}
		e.crashPoint(CrashAfterTransfer)
		// On the simulator the target's resume (with the new owner's
		// token) is asked in the switch's commit: one commit less per
		// migration. A crash after it leaves the request to its executor
		// and the resume to the next call, which asks again (idempotent).
		if sd := simOf(drv); sd != nil && p.Type == MigrationLive {
			resume, err = sd.prepare(ctx, p.To, simCallArgs{Call: simResume, VM: vm.hvVM(), Token: tok + 1})
			if err != nil {
				return vm, err
			}
			defer resume.close()
		}
		// The state is on the target: record it and switch the owner in
		// one commit (the guest is paused until the target resumes it). A
		// crash before this commit rolls back, as one during the transfer.
		vm, err = e.pendingCommit(ctx, vm, func(t *vmTxn) error {
			t.vm.Pending.Live, t.vm.Pending.SaveMs = live, saveMs
			if resume != nil {
				t.ops = append(t.ops, resume.ops...)
			}
			return switchOwner(t, p)
		})
		if err != nil {
			return vm, err
		}
		e.crashPoint(CrashAfterSwitch)
		p = vm.Pending
	}
	// PhaseSwitched: the target owns the VM.
	tok = hypervisor.Token(vm.Token)
	running, coldBoot := false, ""
	switch p.Type {
	case MigrationLive:
		var err error
		if resume != nil {
			err = simOf(drv).await(ctx, resume, vm.Revision, nil)
		} else {
			err = drv.Resume(ctx, p.To, vm.hvVM(), tok)
		}
		if err != nil {
			st, serr := drv.Status(ctx, p.To, vm.Name)
			if serr != nil || st.State != hypervisor.Running || st.Token != tok {
				// The received image is gone: cold start from the VHD,
				// and the record and event say so.
				if err := drv.Start(ctx, p.To, vm.hvVM(), tok); err != nil {
					return vm, fmt.Errorf("resuming VM %q on %s: %w", vm.Name, p.To, err)
				}
				coldBoot = fmt.Sprintf("resuming the migrated guest on %s failed (%v): it was started again from its disk (a cold boot)", p.To, err)
			}
		}
		running = true
	case MigrationQuick:
		var err error
		if st, serr := drv.Status(ctx, p.To, vm.Name); serr != nil || st.State != hypervisor.Running || st.Token != tok {
			// Not restored before a crash: the target's agent restores it
			// from its own mount of the volume.
			err = drv.Restore(ctx, p.To, vm.hvVM(), tok, StateRef{Volume: vm.Volume, Path: paths.VolState}, prog)
		}
		if err != nil {
			return vm, fmt.Errorf("quick migration of VM %q: restoring it on %s from %s: %w", vm.Name, p.To, paths.State, err)
		}
		// The restore must be durable before its saved state goes.
		if vm, err = e.flushHV(ctx, vm); err != nil {
			return vm, err
		}
		if err := e.removeState(ctx, p.To, vm); err != nil {
			return vm, err
		}
		running = true
	}
	if err := drv.Discard(ctx, p.From, vm.Name); err != nil {
		return vm, err
	}
	e.crashPoint(CrashAfterResume)
	rec := &MigrationRecord{ID: p.ID, Type: p.Type, From: p.From, To: p.To, Token: vm.Token, At: e.now().UTC(), ColdBoot: coldBoot}
	switch {
	case p.Live != nil:
		rec.DurationMs, rec.DowntimeMs, rec.Rounds = p.Live.Plan.DurationMs, p.Live.Plan.DowntimeMs, len(p.Live.Plan.Rounds)
	case p.Type == MigrationQuick:
		restore := hypervisor.QuickSaveMs(vm.MemoryMB, 0)
		rec.DurationMs = p.SaveMs + restore + 50
		rec.DowntimeMs = rec.DurationMs
	default:
		rec.DurationMs = 10
	}
	followups := vm.Pending.Restart || vm.Pending.Files || (vm.State == VMRunning) != running
	return e.pendingCommit(ctx, vm, func(t *vmTxn) error {
		if err := e.dropPairLock(t, t.vm.Pending); err != nil {
			return err
		}
		t.vm.LastMigration = rec
		d := map[string]string{"type": rec.Type, "from": rec.From, "to": rec.To,
			"token": fmt.Sprint(rec.Token), "duration_ms": fmt.Sprint(rec.DurationMs), "downtime_ms": fmt.Sprint(rec.DowntimeMs),
			"rounds": fmt.Sprint(rec.Rounds), "migration": rec.ID}
		if rec.ColdBoot != "" {
			d["cold_boot"] = rec.ColdBoot
		}
		t.event(EventVMMigrationCompleted, d)
		if running {
			t.vm.Status = VMRunning
		} else {
			t.vm.Status = VMOff
		}
		if followups {
			t.vm.Pending.Op, t.vm.Pending.Phase = opConverge, "converge"
			return nil
		}
		t.vm.Pending = nil
		return nil
	})
}

// flushHV commits the operation's buffered simulator writes (vms_hv.go)
// now, if vm's pending operation is still this process's: before a side
// effect outside the database that assumes them (removing a saved state).
func (e *Engine) flushHV(ctx context.Context, vm VM) (VM, error) {
	if ops, _ := hvBufferOf(ctx).pending(); len(ops) == 0 {
		return vm, nil
	}
	return e.pendingCommit(ctx, vm, func(*vmTxn) error { return errNoCommit })
}

// pendingCommit commits fn on the VM if its pending operation is still
// vm's (else another process took it over: ErrBusy).
func (e *Engine) pendingCommit(ctx context.Context, vm VM, fn func(t *vmTxn) error) (VM, error) {
	id := vm.Pending.ID
	return e.vmCommit(ctx, vm.Cluster, vm.Name, func(t *vmTxn) error {
		if !t.exists || t.vm.Pending == nil || t.vm.Pending.ID != id {
			return fmt.Errorf("VM %q: its operation %s was taken over by another process: %w", vm.Name, id, ErrBusy)
		}
		return fn(t)
	})
}

// failMigration handles an error of this process's migration: before the
// ownership switch it rolls back; after it, the pending operation stays for
// the next call to finish.
func (e *Engine) failMigration(ctx context.Context, cluster, name, id string, cause error) error {
	vm, err := e.GetVM(ctx, cluster, name)
	if err != nil || vm.Pending == nil || vm.Pending.ID != id {
		return cause
	}
	if vm.Pending.Op == opMigrate && vm.Pending.Phase != PhaseSwitched {
		_, coldBoot, rerr := e.rollbackMigration(ctx, vm)
		if rerr != nil {
			return fmt.Errorf("%w (rolling the migration back failed too: %v; the next apply retries)", cause, rerr)
		}
		if coldBoot != "" {
			return fmt.Errorf("%w (the migration was rolled back: %s still owns VM %q; %s)", cause, vm.Pending.From, name, coldBoot)
		}
		return fmt.Errorf("%w (the migration was rolled back: %s still owns VM %q)", cause, vm.Pending.From, name)
	}
	return fmt.Errorf("%w (the VM's operation is left for the next apply to finish)", cause)
}

// rollbackMigration undoes a migration that had not switched owners: the
// source runs the VM again (resumed from pause, restored from its saved
// state, or started) with the prior spec, the target's copy and
// reservation go. coldBoot says why when the guest had to be started
// anew (its event says so too).
func (e *Engine) rollbackMigration(ctx context.Context, vm VM) (VM, string, error) {
	p := vm.Pending
	drv, err := e.Hypervisor(ctx, vm.Cluster)
	if err != nil {
		return vm, "", err
	}
	tok := hypervisor.Token(vm.Token)
	prior := vm.VMSpec
	if vm.Pending.Prior != nil {
		prior = *vm.Pending.Prior
	}
	pv := vm
	pv.VMSpec = prior
	coldBoot := ""
	paths, err := PathsFor(vm.DriveLetter, vm.Name)
	if err != nil {
		return vm, "", err
	}
	if err := drv.Discard(ctx, p.To, vm.Name); err != nil {
		return vm, "", err
	}
	if p.WasRunning {
		st, err := drv.Status(ctx, p.From, vm.Name)
		switch {
		case err == nil && st.State == hypervisor.Running && st.Token == tok:
		case err == nil && st.State == hypervisor.Paused:
			err = drv.Resume(ctx, p.From, pv.hvVM(), tok)
		case err == nil && st.State == hypervisor.Saved:
			err = drv.Restore(ctx, p.From, pv.hvVM(), tok, StateRef{Volume: vm.Volume, Path: paths.VolState}, nil)
		default:
			// Its running state is gone: a new boot, and said so.
			coldBoot = fmt.Sprintf("its guest's running state was lost (%s on %s): it was started again from its disk (a cold boot)", st.State, p.From)
			if err != nil {
				coldBoot = fmt.Sprintf("its guest's running state was lost (%v): it was started again from its disk on %s (a cold boot)", err, p.From)
			}
			err = drv.Start(ctx, p.From, pv.hvVM(), tok)
		}
		if err != nil {
			return vm, "", fmt.Errorf("rolling back the migration of VM %q: running it again on %s: %w", vm.Name, p.From, err)
		}
	}
	if p.Type == MigrationQuick {
		// The source runs again (durably) before its saved state goes.
		if vm, err = e.flushHV(ctx, vm); err != nil {
			return vm, coldBoot, err
		}
		_ = e.removeState(ctx, p.From, vm)
	}
	vm, err = e.pendingCommit(ctx, vm, func(t *vmTxn) error {
		if err := e.dropPairLock(t, t.vm.Pending); err != nil {
			return err
		}
		if err := t.release(p.To, t.vm.Name); err != nil {
			return err
		}
		if err := t.reserve(p.From, prior, false); err != nil {
			return err
		}
		t.vm.VMSpec = prior
		t.vm.Status = VMOff
		if p.WasRunning {
			t.vm.Status = VMRunning
		}
		d := map[string]string{"type": p.Type, "from": p.From, "to": p.To,
			"phase": p.Phase, "token": fmt.Sprint(t.vm.Token), "migration": p.ID, "owner": p.From}
		if coldBoot != "" {
			d["cold_boot"] = coldBoot
		}
		t.event(EventVMMigrationRolledBack, d)
		t.vm.Pending = nil
		return nil
	})
	return vm, coldBoot, err
}

// ---- recovery ----

// settleAbandoned finishes or rolls back the VM's pending operation if its
// process is gone. A live holder is waited for a little, then ErrBusy.
func (e *Engine) settleAbandoned(ctx context.Context, cluster, name string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		vm, err := e.vmOnly(ctx, cluster, name) // its pending operation only
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if vm.Pending == nil {
			return nil
		}
		if e.abandoned(vm.Pending) {
			vm, err = e.GetVM(ctx, cluster, name) // with its paths
			if errors.Is(err, ErrNotFound) || (err == nil && vm.Pending == nil) {
				return nil
			}
			if err != nil {
				return err
			}
			_, err := e.recoverVM(ctx, vm)
			return err
		}
		if time.Now().After(deadline) {
			return busyError(vm)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// recoverVM takes over the abandoned pending operation of vm and finishes
// it (a migration past its ownership switch, a converge) or rolls it back
// (a creation, a migration before the switch).
func (e *Engine) recoverVM(ctx context.Context, vm VM) (VM, error) {
	old := vm.Pending
	holder := e.newHolder()
	defer e.rt.running(old.ID)()
	vm, err := e.vmCommit(ctx, vm.Cluster, vm.Name, func(t *vmTxn) error {
		if t.vm.Pending == nil || t.vm.Pending.ID != old.ID {
			return fmt.Errorf("VM %q: its operation changed while recovering it: %w", vm.Name, ErrConflict)
		}
		t.vm.Pending.Holder = holder
		t.event("vm.recovery", map[string]string{"op": old.Op, "phase": old.Phase, "previous_holder": old.Holder.String(),
			"holder": holder.String(), "migration": old.ID})
		return nil
	})
	if err != nil {
		return vm, err
	}
	switch {
	case old.Op == opCreate:
		return VM{}, e.deleteVM(ctx, vm)
	case old.Op == opMigrate && old.Phase != PhaseSwitched:
		vm, _, err := e.rollbackMigration(ctx, vm)
		return vm, err
	default:
		return e.runPending(ctx, vm)
	}
}

// RefreshVM returns the VM after finishing or rolling back an operation a
// crashed process left (a live one is left alone: the VM shows
// "migrating"), as reads show it (vms_observe.go).
func (e *Engine) RefreshVM(ctx context.Context, cluster, name string) (VM, error) {
	ctx = withHVBuffer(ctx) // simulator writes ride on the VM's commits (vms_hv.go)
	vm, err := e.GetVM(ctx, cluster, name)
	if err != nil {
		return vm, err
	}
	if vm.Pending != nil && e.abandoned(vm.Pending) {
		if _, err := e.recoverVM(ctx, vm); err != nil && !errors.Is(err, ErrNotFound) {
			return vm, err
		}
		return e.GetVM(ctx, cluster, name)
	}
	vm, err = e.failIfVolumeLost(ctx, vm) // volumes_lun.go
	if err != nil {
		return vm, err
	}
	return e.observe(ctx, vm, map[string]error{}), nil
}
