package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// The simulator as a node's agent runs it. The control plane's driver
// (simDriver) only reads the simulator's records (Status) and asks: every
// call that acts on a node is a node-work request (workVMHypervisor) that
// the node's executor carries out with the embedded simulator
// (hypervisor.Simulator) over the cluster database, opening a quick
// migration's state file on its own mount of the VM's volume. The node-work
// protocol, not the qemu driver's, carries it: it is the protocol a VM's
// file work already uses (the same executors, in-process ones on the
// embedded database included, and the same object, so a VM's file work
// and hypervisor calls on a node are one queue), and its ReportBack lets
// the simulator's writes ride on the VM operation's next commit as before
// (vms_hv.go).
//
// The caller's uncommitted simulator writes travel with the request
// (Overlay), so the executor sees what the caller sees; the executor's
// writes come back in the result (ReportBack: the caller buffers them for
// its next commit of the VM) or are committed with the result (a caller
// outside a VM operation).

// workVMHypervisor carries out a hypervisor call of the simulator on the
// executor's node (args: simCallArgs; outcome: simCallOutcome).
const workVMHypervisor = "vm.hypervisor"

// workVMRemoveState removes a VM's quick-migration state file on the
// executor's node's mount (args: the VM).
const workVMRemoveState = "vm.remove_state"

// Simulator calls.
const (
	simStart   = "start"
	simStop    = "stop"
	simDiscard = "discard"
	simSave    = "save"
	simRestore = "restore"
	simPreCopy = "precopy"
	simResume  = "resume"
)

// StateRef names a VM's saved-state file on its volume: the StateFile the
// engine hands a driver. It is no open file: the node's agent opens the
// path on its own mount (the simulator), or keeps the state its own way
// (qemu, which ignores it).
type StateRef struct {
	Volume string `json:"volume"`
	// Path is the file's path on the volume (VMPaths.VolState).
	Path string `json:"path"`
}

var errStateRef = errors.New("a saved-state file reference: only the node's agent opens it")

func (StateRef) ReadAt([]byte, int64) (int, error)  { return 0, errStateRef }
func (StateRef) WriteAt([]byte, int64) (int, error) { return 0, errStateRef }
func (StateRef) Truncate(int64) error               { return errStateRef }

// hvWrite is one simulator record write (key without hvPrefix; Del: a
// deletion).
type hvWrite struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value,omitempty"`
	Del   bool            `json:"del,omitempty"`
}

type simCallArgs struct {
	Call    string           `json:"call"`
	Cluster string           `json:"cluster"`
	Name    string           `json:"name"`
	VM      hypervisor.VM    `json:"vm"`
	Token   hypervisor.Token `json:"token,omitempty"`
	// From and To are a live migration's nodes (PreCopy).
	From hypervisor.Node `json:"from,omitzero"`
	To   hypervisor.Node `json:"to,omitzero"`
	// State is the saved-state file of Save and Restore.
	State *StateRef `json:"state,omitempty"`
	// Overlay is the caller's uncommitted simulator writes.
	Overlay []hvWrite `json:"overlay,omitempty"`
}

type simCallOutcome struct {
	Save hypervisor.SaveResult `json:"save,omitzero"`
	Live hypervisor.LiveResult `json:"live,omitzero"`
	// Progress is what the simulator told of the call, for the caller to
	// pass on.
	Progress []hypervisor.Progress `json:"progress,omitempty"`
	// Writes are the call's simulator writes, for a ReportBack caller.
	Writes []hvWrite `json:"writes,omitempty"`
}

// simDriver is the control plane's side of the simulator of one cluster.
type simDriver struct {
	e       *Engine
	cluster string
}

var _ hypervisor.Driver = (*simDriver)(nil)

func (d *simDriver) Name() string { return HypervisorSimulator }

// reader is the simulator over the database and the caller's buffer:
// reads only.
func (d *simDriver) reader() *hypervisor.Simulator {
	return hypervisor.NewSimulator(hvBackend{d.e.st}, d.cluster)
}

func (d *simDriver) Status(ctx context.Context, node, name string) (hypervisor.Status, error) {
	return d.reader().Status(ctx, node, name)
}

// call has node's executor carry out a.
func (d *simDriver) call(ctx context.Context, node string, a simCallArgs, progress func(hypervisor.Progress)) (simCallOutcome, error) {
	req, err := d.request(ctx, a)
	if err != nil {
		return simCallOutcome{}, err
	}
	delay := 5 * time.Millisecond
	for attempt := 1; ; attempt++ {
		res, err := d.e.nodeWork(ctx, node, req)
		if errors.Is(err, ErrBusy) && attempt < simBusyAttempts && ctx.Err() == nil {
			// Another process's call of the VM on the node replaced this
			// one before its executor ran it (a cluster leader's and
			// `kayoctl host recover`'s starts of one VM when quorum
			// returns): the calls are idempotent, so ask again.
			select {
			case <-ctx.Done():
			case <-time.After(delay):
			}
			delay = min(2*delay, 200*time.Millisecond)
			continue
		}
		return d.outcome(ctx, node, req, res, err, progress)
	}
}

// simBusyAttempts bounds a simulator call whose request other callers
// keep replacing.
const simBusyAttempts = 10

// request is the node-work request of call a.
func (d *simDriver) request(ctx context.Context, a simCallArgs) (WorkRequest, error) {
	a.Cluster = d.cluster
	if a.Name == "" {
		a.Name = a.VM.Name
	}
	a.Overlay = hvBufferOf(ctx).overlay(d.cluster + "/")
	b, err := json.Marshal(a)
	if err != nil {
		return WorkRequest{}, err
	}
	return WorkRequest{Op: workVMHypervisor, Object: vmWorkObject(d.cluster, a.Name), Args: b, Token: int64(a.Token)}, nil
}

func (d *simDriver) outcome(ctx context.Context, node string, req WorkRequest, res workResult, err error, progress func(hypervisor.Progress)) (simCallOutcome, error) {
	out, oerr := simOutcome(ctx, res.Outcome, progress)
	if oerr != nil && err == nil {
		err = fmt.Errorf("%s of %s on %s: its result: %w", req.Op, req.Object, node, oerr)
	}
	return out, err
}

// prepare makes call a on node ready to ride on a commit of the caller
// (its ops); await then waits for it. The caller closes it.
func (d *simDriver) prepare(ctx context.Context, node string, a simCallArgs) (*pendingWork, error) {
	req, err := d.request(ctx, a)
	if err != nil {
		return nil, err
	}
	return d.e.newWork(ctx, node, req)
}

// await waits for w, committed at revision rev.
func (d *simDriver) await(ctx context.Context, w *pendingWork, rev int64, progress func(hypervisor.Progress)) error {
	res, err := w.await(ctx, rev)
	_, err = d.outcome(ctx, w.node, w.req, res, err, progress)
	return err
}

// askedWork holds a request that rode on a VM operation's intent commit
// (a live migration's pre-copy on the simulator), for the operation to
// wait for: its pending operation's ID and the request.
type askedWork struct {
	id string
	w  *pendingWork
}

type askedKey struct{}

// withAsked returns ctx carrying a holder for such a request.
func withAsked(ctx context.Context) (context.Context, *askedWork) {
	a := &askedWork{}
	return context.WithValue(ctx, askedKey{}, a), a
}

func askedOf(ctx context.Context) *askedWork {
	a, _ := ctx.Value(askedKey{}).(*askedWork)
	return a
}

// set replaces the held request (an earlier attempt of the commit's).
func (a *askedWork) set(id string, w *pendingWork) {
	a.close()
	a.id, a.w = id, w
}

// take returns the request asked for pending operation id, once.
func (a *askedWork) take(id string) *pendingWork {
	if a == nil || a.w == nil || a.id != id {
		return nil
	}
	w := a.w
	a.w = nil
	return w
}

func (a *askedWork) close() {
	if a != nil && a.w != nil {
		a.w.close()
		a.w = nil
	}
}

// askPreCopy adds to t, the intent commit of live migration p on the
// simulator, the request of the source's pre-copy (held in t's context's
// askedWork): migrateForward then waits for it instead of asking.
func (e *Engine) askPreCopy(t *vmTxn, v *placementView, p *Pending) error {
	a := askedOf(t.ctx)
	if a == nil || p.Type != MigrationLive || p.Restart || v.cluster.Hypervisor != HypervisorSimulator {
		return nil
	}
	d := &simDriver{e: e, cluster: t.cluster}
	from, to := v.hosts[p.From], v.hosts[p.To]
	w, err := d.prepare(t.ctx, p.From, simCallArgs{Call: simPreCopy, VM: t.vm.hvVM(), Token: hypervisor.Token(t.vm.Token),
		From: hypervisor.Node{Name: p.From, ProcessorVendor: from.ProcessorVendor}, To: hypervisor.Node{Name: p.To, ProcessorVendor: to.ProcessorVendor}})
	if err != nil {
		return err
	}
	a.set(p.ID, w)
	t.ops = append(t.ops, w.ops...)
	return nil
}

// simOutcome reads a simulator call's outcome from a result: its writes
// go to the caller's buffer (a ReportBack request's; else the result's
// commit carried them), its progress to progress.
func simOutcome(ctx context.Context, raw json.RawMessage, progress func(hypervisor.Progress)) (simCallOutcome, error) {
	var out simCallOutcome
	if len(raw) == 0 {
		return out, nil
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return out, err
	}
	if buf := hvBufferOf(ctx); buf != nil {
		for _, w := range out.Writes {
			if w.Del {
				buf.put(w.Key, nil)
			} else {
				buf.put(w.Key, []byte(w.Value))
			}
		}
	}
	if progress != nil {
		for _, p := range out.Progress {
			progress(p)
		}
	}
	return out, nil
}

// simRider is a simulator call that rides on a VM's file work on the same
// node (vmFilesArgs.Start, vmRemoveArgs.Discard): one request, not two.
func simRider(ctx context.Context, cluster, call string, vm VM) *simCallArgs {
	a := &simCallArgs{Call: call, Cluster: cluster, Name: vm.Name, VM: vm.hvVM(), Token: hypervisor.Token(vm.Token)}
	a.Overlay = hvBufferOf(ctx).overlay(cluster + "/")
	return a
}

// vmWorkHere (run by the node's executor) carries out the VM work that
// holds simulator calls: a call of its own (workVMHypervisor), or file
// work with a call riding on it. handled is false for other work.
func (e *Engine) vmWorkHere(ctx context.Context, node string, req WorkRequest) (out WorkOutput, handled bool, err error) {
	var sim *simCallArgs
	var files func() error
	switch req.Op {
	case workVMHypervisor:
		sim = &simCallArgs{}
		if err := json.Unmarshal(req.Args, sim); err != nil {
			return out, true, fmt.Errorf("%s: arguments: %w", req.Op, err)
		}
	case workVMFiles:
		var a vmFilesArgs
		if err := json.Unmarshal(req.Args, &a); err != nil {
			return out, true, fmt.Errorf("%s: arguments: %w", req.Op, err)
		}
		files, sim = func() error { return e.writeFilesHere(ctx, a.VM, a.Fresh) }, a.Start
		if sim != nil {
			// The files first: the VM starts from them.
			if err := files(); err != nil {
				return out, true, err
			}
			files = nil
		}
	case workVMRemoveFiles:
		var a vmRemoveArgs
		if err := json.Unmarshal(req.Args, &a); err != nil {
			return out, true, fmt.Errorf("%s: arguments: %w", req.Op, err)
		}
		// The VM is discarded first: its files go after it stopped.
		files, sim = func() error { return e.removeFilesHere(ctx, a.VM) }, a.Discard
	default:
		return out, false, nil
	}
	if sim != nil {
		out.Outcome, out.ops, err = e.simHere(ctx, node, *sim, req.ReportBack)
		if err != nil {
			return out, true, err
		}
	}
	if files != nil {
		err = files()
	}
	return out, true, err
}

func (d *simDriver) Start(ctx context.Context, node string, vm hypervisor.VM, tok hypervisor.Token) error {
	_, err := d.call(ctx, node, simCallArgs{Call: simStart, VM: vm, Token: tok}, nil)
	return err
}

func (d *simDriver) Stop(ctx context.Context, node, name string, tok hypervisor.Token) error {
	_, err := d.call(ctx, node, simCallArgs{Call: simStop, Name: name, Token: tok}, nil)
	if d.agentGone(err) {
		return nil // its simulated guests went with it
	}
	return err
}

// agentGone reports whether err says that the node's agent is down with
// the database on etcd, where no executor stands in for it: its simulated
// guests went with it, as a qemu node's QEMU processes go with its agent
// (qemu_driver.go), so a stop is done and a discard drops the record.
func (d *simDriver) agentGone(err error) bool {
	return d.e.remoteDB && errors.Is(err, ErrAgentDown)
}

func (d *simDriver) Discard(ctx context.Context, node, name string) error {
	st, err := d.Status(ctx, node, name)
	switch {
	case errors.Is(err, hypervisor.ErrNotFound):
		return nil // nothing there (a VM's other nodes on deletion)
	case err != nil:
		return err
	case st.State == hypervisor.Off || st.State == hypervisor.Saved || st.State == hypervisor.Paused:
		// Nothing runs there (stopped, saved, or paused for a migration's
		// stop-and-copy: the source of a migration whose target owns the
		// VM now): only the node's record is left, which goes with the
		// operation's next commit, without a round trip to the node's
		// agent, as the qemu driver drops a stopped VM's record.
		return hvBackend{d.e.st}.Delete(ctx, d.reader().RecordKey(node, name))
	}
	_, err = d.call(ctx, node, simCallArgs{Call: simDiscard, Name: name}, nil)
	if d.agentGone(err) {
		return hvBackend{d.e.st}.Delete(ctx, d.reader().RecordKey(node, name))
	}
	return err
}

func (d *simDriver) Save(ctx context.Context, node, name string, tok hypervisor.Token, f hypervisor.StateFile, progress func(hypervisor.Progress)) (hypervisor.SaveResult, error) {
	ref, ok := f.(StateRef)
	if !ok {
		return hypervisor.SaveResult{}, fmt.Errorf("saving VM %q on %s: the state file must be a StateRef (the node's agent opens it)", name, node)
	}
	out, err := d.call(ctx, node, simCallArgs{Call: simSave, Name: name, Token: tok, State: &ref}, progress)
	return out.Save, err
}

func (d *simDriver) Restore(ctx context.Context, node string, vm hypervisor.VM, tok hypervisor.Token, f hypervisor.StateFile, progress func(hypervisor.Progress)) error {
	ref, ok := f.(StateRef)
	if !ok {
		return fmt.Errorf("restoring VM %q on %s: the state file must be a StateRef (the node's agent opens it)", vm.Name, node)
	}
	_, err := d.call(ctx, node, simCallArgs{Call: simRestore, VM: vm, Token: tok, State: &ref}, progress)
	return err
}

// PreCopy is carried out by the source's executor, which sends.
func (d *simDriver) PreCopy(ctx context.Context, from, to hypervisor.Node, vm hypervisor.VM, tok hypervisor.Token, progress func(hypervisor.Progress)) (hypervisor.LiveResult, error) {
	out, err := d.call(ctx, from.Name, simCallArgs{Call: simPreCopy, VM: vm, Token: tok, From: from, To: to}, progress)
	return out.Live, err
}

func (d *simDriver) Resume(ctx context.Context, node string, vm hypervisor.VM, tok hypervisor.Token) error {
	_, err := d.call(ctx, node, simCallArgs{Call: simResume, VM: vm, Token: tok}, nil)
	return err
}

// simHere (run by the node's executor) carries out a simulator call on
// node: the simulator over the database and the caller's overlay, its
// writes buffered and handed back (reportBack) or returned as the
// completion commit's ops; a saved-state file opened on this node's mount.
func (e *Engine) simHere(ctx context.Context, node string, a simCallArgs, reportBack bool) (json.RawMessage, []store.Op, error) {
	buf := &hvBuffer{writes: map[string][]byte{}, last: map[string]uint64{}}
	for _, w := range a.Overlay {
		if w.Del {
			buf.put(w.Key, nil)
		} else {
			buf.put(w.Key, []byte(w.Value))
		}
	}
	_, seeded := buf.pending()
	sctx := context.WithValue(ctx, hvBufferKey{}, buf)
	sim := hypervisor.NewSimulator(hvBackend{e.st}, a.Cluster)
	var out simCallOutcome
	prog := func(p hypervisor.Progress) { out.Progress = append(out.Progress, p) }
	var err error
	switch a.Call {
	case simStart:
		err = sim.Start(sctx, node, a.VM, a.Token)
	case simStop:
		err = sim.Stop(sctx, node, a.Name, a.Token)
	case simDiscard:
		err = sim.Discard(sctx, node, a.Name)
	case simResume:
		err = sim.Resume(sctx, node, a.VM, a.Token)
	case simPreCopy:
		out.Live, err = sim.PreCopy(sctx, a.From, a.To, a.VM, a.Token, prog)
	case simSave, simRestore:
		if a.State == nil {
			return nil, nil, fmt.Errorf("%s of VM %q: no state file named", a.Call, a.Name)
		}
		err = e.onVolume(ctx, a.State.Volume, node, func(fv *kayofs.Volume) error {
			if a.Call == simSave {
				f, err := openOrCreate(fv, a.State.Path)
				if err != nil {
					return err
				}
				out.Save, err = sim.Save(sctx, node, a.Name, a.Token, f, prog)
				return err
			}
			// Restored before a crash: the state file may be gone.
			if st, err := sim.Status(sctx, node, a.VM.Name); err == nil && st.State == hypervisor.Running && st.Token == a.Token {
				return nil
			}
			f, err := fv.Open(a.State.Path)
			if err != nil {
				return err
			}
			return sim.Restore(sctx, node, a.VM, a.Token, f, prog)
		})
	default:
		return nil, nil, fmt.Errorf("simulator call %q is unknown to this executor (an older kayoctl agent than the control plane? upgrade it)", a.Call)
	}
	writes := buf.since(seeded)
	var ops []store.Op
	if reportBack {
		out.Writes = writes
	} else if err == nil {
		for _, w := range writes {
			if w.Del {
				ops = append(ops, store.Del(hvPrefix+w.Key))
			} else {
				ops = append(ops, store.Put(hvPrefix+w.Key, w.Value))
			}
		}
	}
	b, merr := json.Marshal(out)
	if merr != nil && err == nil {
		err = merr
	}
	return b, ops, err
}

// removeStateHere (run by the node's executor) removes the VM's
// quick-migration state file from this node's mount; a missing one is
// fine.
func (e *Engine) removeStateHere(ctx context.Context, vm VM, node string) error {
	p, err := PathsFor(vm.DriveLetter, vm.Name)
	if err != nil {
		return err
	}
	return e.onVolume(ctx, vm.Volume, node, func(fv *kayofs.Volume) error {
		if err := fv.Remove(p.VolState); err != nil && !errors.Is(err, kayofs.ErrNotExist) {
			return err
		}
		return nil
	})
}

// removeState has node's executor remove the VM's saved-state file.
func (e *Engine) removeState(ctx context.Context, node string, vm VM) error {
	_, err := e.vmWork(ctx, node, workVMRemoveState, vm, vm)
	return err
}

// overlay returns the buffered simulator writes under prefix.
func (b *hvBuffer) overlay(prefix string) []hvWrite {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []hvWrite
	for k, v := range b.writes {
		if strings.HasPrefix(k, prefix) {
			out = append(out, hvWrite{Key: k, Value: v, Del: v == nil})
		}
	}
	return out
}

// since returns the simulator writes made after seq.
func (b *hvBuffer) since(seq uint64) []hvWrite {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []hvWrite
	for k, s := range b.last {
		if s > seq && !strings.HasPrefix(k, "\x00") {
			v := b.writes[k]
			out = append(out, hvWrite{Key: k, Value: v, Del: v == nil})
		}
	}
	return out
}
