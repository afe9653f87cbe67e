package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// The engine's side of a node's work executor (internal/nodeagent/workexec):
// the executor schedules (its node's requests, one goroutine per request,
// one request at a time per object, heartbeat, long-lived mounts); the
// engine reads and completes the protocol's records (nodework.go) and
// applies each request's work on the executor's node (ApplyWork). An
// engine on the embedded database runs an executor in-process for each
// node that has no agent (localExecutor), made by Config.LocalExecutor:
// the engine cannot import the package that holds it, which imports the
// engine.

// Executor is a node's work executor that an engine runs in-process.
type Executor interface {
	// Poke wakes it to look for requests.
	Poke()
	// Stopped is closed once it has stopped (its context ended).
	Stopped() <-chan struct{}
}

// LocalExecutorFunc starts the in-process executor of node for e, serving
// the requests addressed to id, until ctx ends (Config.LocalExecutor;
// workexec.Local).
type LocalExecutorFunc func(ctx context.Context, e *Engine, node, id string) Executor

// WorkQueued is a node-work request as its node's executor finds it.
type WorkQueued struct {
	Req WorkRequest
	// Rev is the request's revision, which FinishWork compares.
	Rev int64
	// Done: its result is recorded (served before a restart).
	Done bool
	// Err: the record could not be read (Req is then empty).
	Err error
}

// WorkQueue reads node's requests addressed to executor forID (WorkForAgent
// or an engine's in-process executor) and, when sweep is set, deletes the
// node's results whose request is gone and that are older than
// workResultKeep (an executor sweeps about once a minute).
func (e *Engine) WorkQueue(ctx context.Context, node, forID string, sweep bool) ([]WorkQueued, error) {
	// One read: the node's requests and results.
	kvs, _, err := e.st.List(ctx, nodeWorkPrefix+node+"/")
	if err != nil {
		return nil, err
	}
	results := map[string]store.KV{}
	reqPrefix, resPrefix := nodeWorkReqPrefix(node), nodeWorkResKey(node, "")
	for _, kv := range kvs {
		if obj, ok := strings.CutPrefix(kv.Key, resPrefix); ok {
			results[obj] = kv
		}
	}
	var q []WorkQueued
	for _, kv := range kvs {
		if !strings.HasPrefix(kv.Key, reqPrefix) {
			continue
		}
		var w WorkQueued
		if err := decode(kv, &w.Req); err != nil {
			q = append(q, WorkQueued{Err: err})
			continue
		}
		if w.Req.For != forID {
			continue
		}
		w.Rev = kv.ModRevision
		if r, ok := results[w.Req.Object]; ok {
			var prev workResult
			if err := decode(r, &prev); err != nil {
				q = append(q, WorkQueued{Err: err})
			}
			w.Done = prev.ID == w.Req.ID && prev.Done
		}
		q = append(q, w)
	}
	if sweep {
		e.sweepWork(ctx, kvs, reqPrefix, resPrefix)
	}
	return q, nil
}

// sweepWork deletes the results among kvs whose request is gone and that
// are older than workResultKeep.
func (e *Engine) sweepWork(ctx context.Context, kvs []store.KV, reqPrefix, resPrefix string) {
	reqs := map[string]bool{}
	for _, kv := range kvs {
		if obj, ok := strings.CutPrefix(kv.Key, reqPrefix); ok {
			reqs[obj] = true
		}
	}
	var cmps []store.Cmp
	var ops []store.Op
	for _, kv := range kvs {
		obj, ok := strings.CutPrefix(kv.Key, resPrefix)
		if !ok || reqs[obj] {
			continue
		}
		var r workResult
		if err := decode(kv, &r); err == nil && e.now().Sub(r.Updated) < workResultKeep {
			continue
		}
		cmps = append(cmps, store.At(kv.Key, kv.ModRevision))
		ops = append(ops, store.Del(kv.Key))
	}
	if len(ops) > 0 {
		_, _ = e.st.Commit(ctx, cmps, ops) // a conflict: the next sweep
	}
}

// WorkExpired is the error of a request whose caller's deadline passed
// before its executor started it (nil: it has not): the executor then
// does nothing and records this.
func WorkExpired(req WorkRequest, now time.Time) error {
	if req.Deadline.IsZero() || !now.After(req.Deadline) {
		return nil
	}
	return fmt.Errorf("%s of %s: %w (deadline %s)", req.Op, req.Object, ErrWorkExpired, req.Deadline.Format(time.RFC3339))
}

// FinishWork records the result of w on node, by executor agent: out
// and err as ApplyWork returned them, in one commit with the request's
// deletion, compared with the request's revision. A request superseded or
// withdrawn meanwhile (its caller has gone) records nothing and is
// finished too. The caller is then handed the result (in this process) or
// woken (on its Notify socket).
func (e *Engine) FinishWork(ctx context.Context, node, agent string, w WorkQueued, out WorkOutput, err error) error {
	req := w.Req
	res := workResult{ID: req.ID, Done: true, Executor: agent, Outcome: out.Outcome, Reports: out.Reports}
	if err != nil {
		res.Err, res.Kind = err.Error(), workErrorKind(err)
		var lost *LUNLostError
		var input *InputError
		if errors.As(err, &lost) {
			l := *lost
			l.Err = nil
			res.Lost, res.Kind = &l, workKindLUNLost
		} else if errors.As(err, &input) {
			res.Input = input
		}
	}
	res.Updated = e.now().UTC()
	reqKey, resKey := nodeWorkReqKey(node, req.Object), nodeWorkResKey(node, req.Object)
	if req.ReportBack && err == nil {
		// A VM operation of this engine waits for it (an in-process
		// executor's): the request's deletion, its completion, rides on
		// the operation's next commit of the VM, as the work's reports
		// and simulator writes do, instead of a commit of its own. Until
		// then this executor knows it finished (it does not run it
		// again); a process that dies before leaves the request to no
		// executor (it was for this process's), and the next request of
		// the object there replaces it.
		if ch, ok := e.work.waits.Load(req.ID); ok {
			res.ride = []store.Op{store.Del(reqKey)}
			select {
			case ch.(chan workResult) <- res:
				return nil
			default:
			}
			res.ride = nil
		}
	}
	// The completion: the result, and the request gone, in one commit.
	ops := append([]store.Op{putJSON(resKey, res), store.Del(reqKey)}, out.ops...)
	_, cerr := e.st.Commit(ctx, []store.Cmp{store.At(reqKey, w.Rev)}, ops)
	switch {
	case errors.Is(cerr, store.ErrConflict):
		// Superseded or withdrawn meanwhile: its caller has gone.
	case cerr != nil:
		return fmt.Errorf("recording the result of %s of %s: %w", req.Op, req.Object, cerr)
	}
	if ch, ok := e.work.waits.Load(req.ID); ok {
		select {
		case ch.(chan workResult) <- res: // its caller is of this engine
		default:
		}
	}
	dialWake(req.Notify)
	return nil
}

func workErrorKind(err error) string {
	switch {
	case errors.Is(err, hypervisor.ErrFenced):
		return workKindFenced
	case errors.Is(err, hypervisor.ErrState):
		return workKindHVState
	case errors.Is(err, hypervisor.ErrNotFound):
		return workKindHVNotFound
	case errors.Is(err, hypervisor.ErrIncompatible):
		return workKindHVIncompatible
	case errors.Is(err, ErrNotFound):
		return workKindNotFound
	case errors.Is(err, kayofs.ErrNotEmpty):
		return workKindNotEmpty
	case errors.Is(err, ErrWorkExpired):
		return workKindExpired
	}
	return ""
}

// WorkSite is where ApplyWork carries out a request: the node and what of
// its executor the work uses.
type WorkSite struct {
	// Node is the executor's node.
	Node string
	// Agent identifies the executor in what the work records.
	Agent string
	// Release, when set (a node agent's executor), lets go of the
	// executor's own long-lived mount of volume id and keeps off it for
	// hold; when nil the runtime's idle mounts of it are detached.
	Release func(ctx context.Context, id string, hold time.Duration)
	// Phase, when set (tests), is told of the steps of long work
	// ("format", "formatted").
	Phase func(phase string)
}

func (at WorkSite) phase(p string) {
	if at.Phase != nil {
		at.Phase(p)
	}
}

// WorkOutput is what a request's work gives its caller: its outcome and,
// for a ReportBack request, the volume reports the caller records.
type WorkOutput struct {
	Outcome json.RawMessage
	Reports []VolumeReport
	// ops are writes that ride on the completion commit (a simulator
	// call's records, sim_driver.go).
	ops []store.Op
}

// ApplyWork carries out req on at.Node, up to the request's deadline
// (workRequestTimeout when it has none), and returns its output (the
// reports of a ReportBack request's work also when it failed). Every
// operation is idempotent: a re-run after a crash finds its work done or
// redoes it harmlessly.
func (e *Engine) ApplyWork(ctx context.Context, at WorkSite, req WorkRequest) (WorkOutput, error) {
	// Deadlines are the caller's context's, in real time (not the
	// engine's clock, which tests set).
	dl := req.Deadline
	if dl.IsZero() {
		dl = time.Now().Add(workRequestTimeout)
	}
	ctx, cancel := context.WithDeadline(withExecutor(ctx, at.Node), dl)
	defer cancel()
	var sink *reportSink // the caller records the volume reports
	if req.ReportBack {
		ctx, sink = withReportSink(ctx)
	}
	if out, ok, err := e.vmWorkHere(ctx, at.Node, req); ok { // sim_driver.go
		out.Reports = sink.reports()
		return out, err
	}
	out, err := e.applyWork(ctx, at, req)
	return WorkOutput{Outcome: out, Reports: sink.reports()}, err
}

// applyWork is ApplyWork's work of req.
func (e *Engine) applyWork(ctx context.Context, at WorkSite, req WorkRequest) (json.RawMessage, error) {
	switch req.Op {
	case workVolumeChange:
		var a volumeChangeArgs
		if err := json.Unmarshal(req.Args, &a); err != nil {
			return nil, fmt.Errorf("%s: arguments: %w", req.Op, err)
		}
		// The volume as this node resolves it (its LUN's path here).
		v, err := e.GetVolume(ctx, a.Volume)
		if err != nil {
			return nil, err
		}
		return nil, e.changeOnDiskHere(ctx, v, a.Spec, at.Node)
	case WorkVolumeFormat:
		var a volumeFormatArgs
		if err := json.Unmarshal(req.Args, &a); err != nil {
			return nil, fmt.Errorf("%s: arguments: %w", req.Op, err)
		}
		out, err := e.formatHere(ctx, at, a)
		if err != nil {
			return nil, err
		}
		return json.Marshal(out)
	case workVolumeRelease:
		var a volumeReleaseArgs
		if err := json.Unmarshal(req.Args, &a); err != nil {
			return nil, fmt.Errorf("%s: arguments: %w", req.Op, err)
		}
		if at.Release != nil {
			at.Release(ctx, a.Volume, a.Hold)
			return nil, nil
		}
		e.rt.mounts.detachVolume(ctx, a.Volume, at.Node)
		return nil, nil
	case workVolumeSlots:
		var a volumeSlotsArgs
		if err := json.Unmarshal(req.Args, &a); err != nil {
			return nil, fmt.Errorf("%s: arguments: %w", req.Op, err)
		}
		out, err := e.slotsHere(ctx, a, at.Agent)
		if err != nil {
			return nil, err
		}
		return json.Marshal(out)
	case workLUNImageRemove:
		var v Volume
		if err := json.Unmarshal(req.Args, &v); err != nil {
			return nil, fmt.Errorf("%s: arguments: %w", req.Op, err)
		}
		return nil, e.lunImageHere(v)
	case workVolumeFileRemove:
		var a volumeFileRemoveArgs
		if err := json.Unmarshal(req.Args, &a); err != nil {
			return nil, fmt.Errorf("%s: arguments: %w", req.Op, err)
		}
		return nil, e.volumeFileRemoveHere(ctx, a, at.Node)
	case workVMRemoveState:
		var vm VM
		if err := json.Unmarshal(req.Args, &vm); err != nil {
			return nil, fmt.Errorf("%s: arguments: %w", req.Op, err)
		}
		return nil, e.removeStateHere(ctx, vm, at.Node)
	case workVolumeFilePut:
		var a volumeFilePutArgs
		if err := json.Unmarshal(req.Args, &a); err != nil {
			return nil, fmt.Errorf("%s: arguments: %w", req.Op, err)
		}
		return nil, e.volumeFilePutHere(ctx, a, at.Node)
	case workVolumeReport:
		var a volumeReportArgs
		if err := json.Unmarshal(req.Args, &a); err != nil {
			return nil, fmt.Errorf("%s: arguments: %w", req.Op, err)
		}
		return nil, e.reportVolumeHere(ctx, a, at.Agent)
	}
	return nil, fmt.Errorf("operation %q is unknown to this executor (an older kayoctl agent than the control plane? upgrade it)", req.Op)
}

// PutWorkAgentBeat records a node agent's executor heartbeat.
func (e *Engine) PutWorkAgentBeat(ctx context.Context, b WorkAgentBeat) error {
	_, err := e.st.Commit(ctx, nil, []store.Op{putJSON(nodeWorkAgentKey(b.Node), b)})
	return err
}

// WatchWorkRequests pokes on every change of node's requests, where the
// database tells of changes, until ctx ends; it reports whether it
// watches (nodework_wake.go).
func (e *Engine) WatchWorkRequests(ctx context.Context, node string, poke func()) bool {
	return watchWake(ctx, e.st, nodeWorkReqPrefix(node), poke)
}

// PinMount mounts volume v as node's executor in the runtime's mount
// cache (volume_mounts.go), pinned so that it never goes idle: the node's
// work in this process shares it. unpin lets go of it (it detaches once
// idle or at DetachMounts).
func (e *Engine) PinMount(ctx context.Context, v Volume, node string) (unpin func(), err error) {
	// The executor's own mount: one that finds the node held by another
	// process (a killed agent's, until its lock expires) waits; it must
	// not ask node's agent, this executor, to lend (lendMount), which
	// would wait for this very mount.
	sm, err := e.rt.mounts.acquire(withExecutor(ctx, node), e, v, node)
	if err != nil {
		return nil, err
	}
	e.rt.mounts.setPinned(v.ID, node, true)
	var once sync.Once
	return func() {
		once.Do(func() {
			e.rt.mounts.setPinned(v.ID, node, false)
			e.rt.mounts.release(sm)
		})
	}, nil
}

// DetachMounts waits until the runtime's mount of volume id as node is
// detached (work that uses it finishes first).
func (e *Engine) DetachMounts(ctx context.Context, id, node string) {
	e.rt.mounts.detachVolume(ctx, id, node)
}

// localWork holds an engine's in-process executors (embedded database,
// no agent) and its callers waiting for results.
type localWork struct {
	start  LocalExecutorFunc // Config.LocalExecutor
	mu     sync.Mutex
	life   context.Context
	stop   context.CancelFunc
	closed bool
	id     string
	execs  map[string]Executor
	// waits: request ID → chan workResult, the waiting callers of this
	// engine.
	waits sync.Map
	// noAgent: node → time.Time until which it is taken to have no agent
	// (workTarget).
	noAgent sync.Map
}

// localExecutor returns this engine's running executor for node,
// starting one when there is none (or it stopped), and the ID its
// requests are addressed to.
func (e *Engine) localExecutor(node string) (Executor, string, error) {
	w := &e.work
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, "", fmt.Errorf("node %s: the engine is closed", node)
	}
	if w.start == nil {
		return nil, "", fmt.Errorf("node %s: %w: no agent serves it and this process runs no executor for it", node, ErrAgentDown)
	}
	if w.life == nil {
		w.life, w.stop = context.WithCancel(context.Background()) // ends with Close
		w.id = fmt.Sprintf("local:%s/%d/%s", e.rt.host, e.rt.pid, randomHex(4))
		w.execs = map[string]Executor{}
	}
	if x := w.execs[node]; x != nil {
		select {
		case <-x.Stopped():
		default:
			return x, w.id, nil
		}
	}
	x := w.start(w.life, e, node, w.id)
	w.execs[node] = x
	return x, w.id, nil
}

// closeLocalWork stops the engine's in-process executors and waits for
// them.
func (e *Engine) closeLocalWork() {
	w := &e.work
	w.mu.Lock()
	w.closed = true
	execs := w.execs
	if w.stop != nil {
		w.stop()
	}
	w.mu.Unlock()
	for _, x := range execs {
		<-x.Stopped()
	}
}
