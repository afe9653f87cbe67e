package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/privsock"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// Node work: the request/result protocol that carries a node's data-plane
// work (a VM's files, the simulator's calls, a volume's format, change and
// slots) from the control plane to
// the executor of that node (internal/nodeagent/workexec; its engine side
// executor_work.go). It generalises the qemu driver's protocol
// (qemu_driver.go; docs/ARCHITECTURE.md, "The request/result protocol"):
//
//	node-work/<node>/req/<object>   the request (one at a time per object)
//	node-work/<node>/res/<object>   its progress and result, written by the executor
//	node-work-agents/<node>         the node agent's executor heartbeat
//
// The caller commits the request, wakes the executor and waits for a
// result with the request's ID and Done set. The request is the intent
// and the result the completion, written in one commit that deletes the
// request: an executor that restarts runs again every request of its own
// that is still there, so every operation is idempotent (a re-run finds
// its work done or redoes it harmlessly). A result stays until the
// object's next request, the VM's deletion, or the executor's sweep of
// results older than workResultKeep.
//
// Who executes: the node's agent (`kayoctl agent --node NAME`) while its
// heartbeat is fresh. Without one, on the embedded database, this engine
// runs the node's executor itself in a goroutine that serves the same
// records (a request addressed to it by For); on etcd, a call for a node
// whose agent is down fails at once, naming the node and the command.

// WorkAgentTimeout: a node agent whose work executor has not reported for
// this long is down.
const WorkAgentTimeout = 5 * time.Second

// workResultKeep is how long a result outlives its request before the
// node's executor sweeps it away (its caller read it long before).
const workResultKeep = time.Minute

// workRequestTimeout bounds a request that carries no deadline.
const workRequestTimeout = 10 * time.Minute

// WorkForAgent addresses a request to the node's agent (any process that
// runs `kayoctl agent --node NAME` for it, restarts included).
const WorkForAgent = "agent"

// Operations of node work.
const (
	// workVMFiles creates (fresh) or checks and grows a VM's VHD and
	// writes its configuration file (args: vmFilesArgs).
	workVMFiles = "vm.files"
	// workVMRemoveFiles deletes a VM's files and directory (args: VM).
	workVMRemoveFiles = "vm.remove_files"
	// workVolumeChange grows a volume's LUN image and file system, sets
	// its node slots and label (args: volumeChangeArgs).
	workVolumeChange = "volume.change"
	// WorkVolumeFormat judges, formats and mounts a new volume's LUN on
	// every node of its cluster (args: volumeFormatArgs; outcome:
	// volumeFormatOutcome; volume_format.go).
	WorkVolumeFormat = "volume.format"
	// workVolumeRelease lets go of the node's long-lived mount of a volume
	// (args: volumeReleaseArgs; volume_release.go).
	workVolumeRelease = "volume.release"
	// workVolumeSlots frees and claims nodes' slots on a volume (args:
	// volumeSlotsArgs; outcome: volumeSlotsOutcome; volume_slots.go).
	workVolumeSlots = "volume.slots"
	// workLUNImageRemove removes a deleted volume's embedded LUN image
	// (args: the Volume; volume_slots.go).
	workLUNImageRemove = "volume.remove_image"
	// workVolumeFileRemove removes a put file from a volume (args:
	// volumeFileRemoveArgs; volume_file_work.go).
	workVolumeFileRemove = "volume.file_remove"
	// workVMHypervisor and workVMRemoveState: a simulator call and a
	// quick migration's state file (sim_driver.go).
)

// Result kinds: the error a result carries, as the caller rebuilds it.
const (
	workKindFenced   = "fenced"
	workKindNotFound = "notfound"
	workKindExpired  = "expired"
	workKindLUNLost  = "lun_lost"
	workKindNotEmpty = "not_empty"
	// The simulator's (sim_driver.go).
	workKindHVState        = "hv_state"
	workKindHVNotFound     = "hv_notfound"
	workKindHVIncompatible = "hv_incompatible"
)

// WorkRequest is a node-work request: the caller's intent, which the
// node's executor carries out (ApplyWork) and completes (FinishWork).
type WorkRequest struct {
	ID string `json:"id"`
	Op string `json:"op"`
	// Object is what the request acts on (vm/<cluster>/<vm>): one request
	// at a time per object and node.
	Object string          `json:"object"`
	Args   json.RawMessage `json:"args,omitempty"`
	// Token is the VM's ownership token the caller acts for (0: none);
	// the executor refuses a stale one (hypervisor.ErrFenced).
	Token int64 `json:"token,omitempty"`
	// For is the executor that serves it: WorkForAgent, or the
	// in-process executor of the calling engine.
	For string `json:"for"`
	By  string `json:"by"`
	// Deadline is the caller's; past it the executor does nothing and
	// answers ErrWorkExpired (zero: workRequestTimeout).
	Deadline time.Time `json:"deadline,omitempty"`
	// Notify is a unix socket the executor dials after writing the result
	// ("" none: the caller polls).
	Notify string `json:"notify,omitempty"`
	// ReportBack: the caller records the volume reports of the work (they
	// come back in the result's Reports) on its own next commit, so the
	// work costs no commit of its own for them (volume_reports.go). An
	// executor that does not know it commits them itself, as before.
	ReportBack bool      `json:"report_back,omitempty"`
	Created    time.Time `json:"created"`
}

type workResult struct {
	ID   string `json:"id"`
	Done bool   `json:"done"`
	// Phase is the executor's progress while not Done.
	Phase string `json:"phase,omitempty"`
	Err   string `json:"err,omitempty"`
	Kind  string `json:"kind,omitempty"`
	// Lost: the volume's LUN no longer holds it (Kind workKindLUNLost).
	Lost *LUNLostError `json:"lost,omitempty"`
	// Input: a user attribute is at fault.
	Input   *InputError     `json:"input,omitempty"`
	Outcome json.RawMessage `json:"outcome,omitempty"`
	// Reports are the volume reports of a ReportBack request's work, for
	// its caller to record.
	Reports  []VolumeReport `json:"reports,omitempty"`
	Executor string         `json:"executor,omitempty"`
	Updated  time.Time      `json:"updated"`
	// ride is the completion an executor of the caller's own engine hands
	// over instead of committing it (FinishWork): the caller's next
	// commit of the VM carries it.
	ride []store.Op
}

// WorkAgentBeat is a node agent's work executor heartbeat.
type WorkAgentBeat struct {
	Node  string    `json:"node"`
	Agent string    `json:"agent"`
	PID   int       `json:"pid"`
	Time  time.Time `json:"time"`
	// Stopped: the agent shut down then.
	Stopped time.Time `json:"stopped,omitempty"`
}

type volumeChangeArgs struct {
	Volume string     `json:"volume"`
	Spec   VolumeSpec `json:"spec"`
}

type vmFilesArgs struct {
	VM    VM   `json:"vm"`
	Fresh bool `json:"fresh"`
	// Start: the simulator starts the VM once its files are written (a
	// running VM's creation: sim_driver.go).
	Start *simCallArgs `json:"start,omitempty"`
}

// vmRemoveArgs are workVMRemoveFiles' arguments: the VM (its fields, as
// the arguments were before Discard) and the simulator's discard of it
// on the node, before its files go.
type vmRemoveArgs struct {
	VM
	Discard *simCallArgs `json:"discard,omitempty"`
}

// WorkSocket is the unix socket node's agent is poked on.
func WorkSocket(dataDir, node string) string {
	return privsock.Path(filepath.Join(dataDir, "work"), node+".sock")
}

// workTarget is who serves a node's request: its agent, or local.
type workTarget struct {
	id    string
	local Executor
}

// workTarget picks the executor of node: its agent while its heartbeat
// is fresh; else, on the embedded database, this engine's in-process one.
func (e *Engine) workTarget(ctx context.Context, node string) (workTarget, error) {
	if !e.remoteDB {
		// Known without an agent a moment ago: no read (an agent that
		// starts meanwhile gets the node's work a moment later).
		if until, ok := e.work.noAgent.Load(node); ok && time.Now().Before(until.(time.Time)) {
			x, id, err := e.localExecutor(node)
			if err != nil {
				return workTarget{}, err
			}
			return workTarget{id: id, local: x}, nil
		}
	}
	var b WorkAgentBeat
	_, err := getJSON(ctx, e.st, nodeWorkAgentKey(node), &b)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return workTarget{}, err
	}
	if err == nil && b.Stopped.IsZero() && e.now().Sub(b.Time) <= WorkAgentTimeout {
		return workTarget{id: WorkForAgent}, nil
	}
	if e.remoteDB {
		return workTarget{}, workAgentDown(node, b, err == nil, e.now())
	}
	e.work.noAgent.Store(node, time.Now().Add(noAgentRecheck))
	x, id, err := e.localExecutor(node)
	if err != nil {
		return workTarget{}, err
	}
	return workTarget{id: id, local: x}, nil
}

// noAgentRecheck is how long an engine on the embedded database serves a
// node without an agent before it looks for the node's agent again.
const noAgentRecheck = 500 * time.Millisecond

// workAgentUp is nil while node's agent serves its work.
func (e *Engine) workAgentUp(ctx context.Context, node string) error {
	var b WorkAgentBeat
	_, err := getJSON(ctx, e.st, nodeWorkAgentKey(node), &b)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err == nil && b.Stopped.IsZero() && e.now().Sub(b.Time) <= WorkAgentTimeout {
		return nil
	}
	return workAgentDown(node, b, err == nil, e.now())
}

// workNode picks the node of nodes (sorted) that does a volume's work:
// the first whose agent is up; with none, on the embedded database the
// first (this engine's executor serves it), on etcd an error naming it.
func (e *Engine) workNode(ctx context.Context, nodes []string) (string, error) {
	var first error
	for _, n := range nodes {
		err := e.workAgentUp(ctx, n)
		if err == nil {
			return n, nil
		}
		if !errors.Is(err, ErrAgentDown) {
			return "", err
		}
		if first == nil {
			first = err
		}
	}
	if e.remoteDB {
		return "", fmt.Errorf("no node of %v has its agent up: %w", nodes, first)
	}
	return nodes[0], nil
}

// workReady is nil when node's work can be carried out now: always on the
// embedded database (an in-process executor stands in for a missing
// agent), on etcd while its agent is up. It reads nothing on the embedded
// database.
func (e *Engine) workReady(ctx context.Context, node string) error {
	if !e.remoteDB {
		return nil
	}
	return e.workAgentUp(ctx, node)
}

// WorkReady is nil when node's data-plane work can be carried out now
// (workReady): for callers that wait for a node's agent to come up.
func (e *Engine) WorkReady(ctx context.Context, node string) error { return e.workReady(ctx, node) }

func workAgentDown(node string, b WorkAgentBeat, seen bool, now time.Time) error {
	start := fmt.Sprintf("start `kayoctl agent --node %s` there (with the cluster database on etcd, each node's agent does its data-plane work: its VMs' files and hypervisor calls, its volumes' formats and changes)", node)
	switch {
	case !seen:
		return fmt.Errorf("node %s: %w: no agent has ever run there; %s", node, ErrAgentDown, start)
	case !b.Stopped.IsZero():
		return fmt.Errorf("node %s: %w: its agent (%s) shut down at %s; %s", node, ErrAgentDown, b.Agent, b.Stopped.Format(time.RFC3339), start)
	}
	return fmt.Errorf("node %s: %w: its agent (%s) last reported %s ago (timeout %s); %s",
		node, ErrAgentDown, b.Agent, now.Sub(b.Time).Round(time.Millisecond), WorkAgentTimeout, start)
}

// nodeWork asks node's executor to carry out req and waits for its
// result, up to ctx's deadline.
func (e *Engine) nodeWork(ctx context.Context, node string, req WorkRequest) (workResult, error) {
	w, err := e.newWork(ctx, node, req)
	if err != nil {
		return workResult{}, err
	}
	defer w.close()
	rev, err := e.st.Commit(ctx, nil, w.ops)
	if err != nil {
		return workResult{}, err
	}
	return w.await(ctx, rev)
}

// pendingWork is a node-work request whose commit is the caller's: its
// ops ride on a commit of the caller (a VM's, sim_driver.go), then await
// waits for its result. close ends what it listens on.
type pendingWork struct {
	e     *Engine
	node  string
	req   WorkRequest
	tgt   workTarget
	ops   []store.Op
	buf   *hvBuffer
	got   chan workResult
	wake  chan struct{}
	delay time.Duration
	stops []func()
}

func (w *pendingWork) close() {
	w.e.work.waits.Delete(w.req.ID)
	for _, stop := range w.stops {
		stop()
	}
}

// newWork makes req to node's executor ready to commit (w.ops) and
// listens for its result.
func (e *Engine) newWork(ctx context.Context, node string, req WorkRequest) (*pendingWork, error) {
	tgt, err := e.workTarget(ctx, node)
	if err != nil {
		return nil, fmt.Errorf("%s of %s: %w", req.Op, req.Object, err)
	}
	req.ID, req.Created, req.By, req.For = randomHex(8), e.now().UTC(), e.rt.host+"/"+fmt.Sprint(e.rt.pid), tgt.id
	if dl, ok := ctx.Deadline(); ok {
		req.Deadline = dl.UTC()
	}
	// Within a VM operation the work's volume reports ride on the
	// operation's next commit of the VM, as they do for work done in
	// this process (putReport).
	buf := hvBufferOf(ctx)
	req.ReportBack = buf != nil
	// got receives the result an executor of this engine committed; wake
	// is dialled by an agent after it wrote the result.
	reqKey, resKey := nodeWorkReqKey(node, req.Object), nodeWorkResKey(node, req.Object)
	w := &pendingWork{e: e, node: node, tgt: tgt, buf: buf, got: make(chan workResult, 1), wake: make(chan struct{}, 1), delay: 2 * time.Millisecond}
	e.work.waits.Store(req.ID, w.got)
	if tgt.local == nil {
		addr, stop := listenWake(e.dataDir, w.wake)
		w.stops = append(w.stops, stop)
		req.Notify = addr
		if addr != "" {
			w.delay = notifiedPoll
		}
		// Where the database tells of changes, the result's commit wakes
		// this wait too, from any machine (nodework_wake.go); polling is
		// then only the fallback. It watches until close.
		wctx, unwatch := context.WithCancel(context.WithoutCancel(ctx))
		w.stops = append(w.stops, unwatch)
		if watchWake(wctx, e.st, resKey, func() { signalWake(w.wake) }) {
			w.delay = watchedPoll
		}
	}
	w.req = req
	w.ops = []store.Op{putJSON(reqKey, req), store.Del(resKey)}
	// A completion of an earlier request there that waits for the
	// operation's next commit must not delete this one.
	buf.dropRaw(reqKey)
	return w, nil
}

// await pokes the executor of w's request, committed at revision rev,
// and waits for its result, up to ctx's deadline.
func (w *pendingWork) await(ctx context.Context, rev int64) (workResult, error) {
	e, node, req, tgt, buf, got, wake, delay := w.e, w.node, w.req, w.tgt, w.buf, w.got, w.wake, w.delay
	reqKey, resKey := nodeWorkReqKey(node, req.Object), nodeWorkResKey(node, req.Object)
	e.pokeExecutor(tgt, node)
	// The executor's completion commit deleted the request; its result
	// stays until the object's next request, the VM's deletion or the
	// executor's sweep (executor_work.go).
	done := func(res workResult) (workResult, error) {
		if buf != nil {
			for _, op := range reportOps(res.Reports...) {
				buf.putRaw(op.Key, op.Value)
			}
			// The completion of work done in this process rides on the
			// operation's next commit (FinishWork).
			for _, op := range res.ride {
				buf.putRaw(op.Key, op.Value)
			}
		}
		return res, res.error(node, req)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var poll <-chan time.Time
	// An in-process executor hands its result over on got: the record is
	// read only on the agent's pokes and polls, and once a second.
	read := tgt.local == nil
	for {
		if read {
			var res workResult
			_, err := getJSON(ctx, e.st, resKey, &res)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return res, err
			}
			if err == nil && res.ID == req.ID && res.Done {
				return done(res)
			}
			var cur WorkRequest
			_, err = getJSON(ctx, e.st, reqKey, &cur)
			if err == nil && cur.ID != req.ID {
				return res, fmt.Errorf("%s of %s on %s: superseded by request %s (%s) of %s: %w", req.Op, req.Object, node, cur.ID, cur.Op, cur.By, ErrBusy)
			}
			if errors.Is(err, store.ErrNotFound) {
				// No request: ours was served (read its result again) or
				// replaced by another that was served, which would leave
				// this wait without an end.
				if _, err := getJSON(ctx, e.st, resKey, &res); err == nil && res.ID == req.ID && res.Done {
					return done(res)
				}
				return res, fmt.Errorf("%s of %s on %s: superseded by another request, served: %w", req.Op, req.Object, node, ErrBusy)
			}
		}
		read = false
		var stopped <-chan struct{}
		if tgt.local != nil {
			stopped = tgt.local.Stopped()
			poll = nil
		} else {
			// The agent dials Notify; polling is the fallback.
			poll = time.After(delay)
			delay = min(delay*2, max(delay, 50*time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return workResult{}, fmt.Errorf("%s of %s on %s: waiting for the node's executor: %w", req.Op, req.Object, node, ctx.Err())
		case res := <-got:
			if res.ID == req.ID {
				return done(res)
			}
		case <-wake:
			read = true
		case <-poll:
			read = true
		case <-tick.C:
			read = true
			if tgt.local != nil {
				break
			}
			if err := e.workAgentUp(ctx, node); err != nil {
				if e.remoteDB {
					return workResult{}, fmt.Errorf("%s of %s: the agent stopped answering: %w", req.Op, req.Object, err)
				}
				// Embedded database: this engine's executor takes the
				// request over, same ID (re-running it is harmless).
				t, r, err := e.takeOver(ctx, node, req, rev)
				if errors.Is(err, store.ErrConflict) {
					break // the agent finished it meanwhile (or it was superseded): read
				}
				if err != nil {
					return workResult{}, err
				}
				tgt, rev, req.For = t, r, t.id
			}
		case <-stopped:
			// This engine's executor stopped (cancelled, as a crash): a
			// new one runs the request again.
			x, _, err := e.localExecutor(node)
			if err != nil {
				return workResult{}, err
			}
			tgt.local = x
			e.pokeExecutor(tgt, node)
		}
	}
}

// takeOver readdresses req, left by node's agent that stopped answering,
// to this engine's in-process executor of node, compared with the
// request's revision rev: ErrConflict when the request was finished or
// superseded meanwhile.
func (e *Engine) takeOver(ctx context.Context, node string, req WorkRequest, rev int64) (workTarget, int64, error) {
	x, id, err := e.localExecutor(node)
	if err != nil {
		return workTarget{}, 0, err
	}
	req.For = id
	key := nodeWorkReqKey(node, req.Object)
	rev, err = e.st.Commit(ctx, []store.Cmp{store.At(key, rev)}, []store.Op{putJSON(key, req)})
	if err != nil {
		return workTarget{}, 0, err
	}
	tgt := workTarget{id: id, local: x}
	e.pokeExecutor(tgt, node)
	return tgt, rev, nil
}

// pokeExecutor wakes the executor of tgt: a channel in-process, the
// agent's socket otherwise (it also polls).
func (e *Engine) pokeExecutor(tgt workTarget, node string) {
	if tgt.local != nil {
		tgt.local.Poke()
		return
	}
	if c, err := net.DialTimeout("unix", WorkSocket(e.dataDir, node), 100*time.Millisecond); err == nil {
		_, _ = c.Write([]byte{1})
		_ = c.Close()
	}
}

// dropResult deletes res, the result of a request to node on object,
// unless a later request's result replaced it: for objects whose results
// nothing else removes (a volume that goes).
func (e *Engine) dropResult(ctx context.Context, node, object string, res workResult) {
	key := nodeWorkResKey(node, object)
	var cur workResult
	if rev, err := getJSON(ctx, e.st, key, &cur); err == nil && cur.ID == res.ID {
		_, _ = e.st.Commit(ctx, []store.Cmp{store.At(key, rev)}, []store.Op{store.Del(key)})
	}
}

// error rebuilds the executor's error (nil: none) with its kind.
func (r workResult) error(node string, req WorkRequest) error {
	if r.Err == "" {
		return nil
	}
	if r.Lost != nil {
		lost := *r.Lost
		return &lost
	}
	if r.Input != nil {
		in := *r.Input
		return &in
	}
	var kind error
	switch r.Kind {
	case workKindFenced:
		kind = hypervisor.ErrFenced
	case workKindNotFound:
		kind = ErrNotFound
	case workKindExpired:
		kind = ErrWorkExpired
	case workKindNotEmpty:
		kind = kayofs.ErrNotEmpty
	case workKindHVState:
		kind = hypervisor.ErrState
	case workKindHVNotFound:
		kind = hypervisor.ErrNotFound
	case workKindHVIncompatible:
		kind = hypervisor.ErrIncompatible
	}
	msg := fmt.Sprintf("node %s: %s", node, r.Err)
	if kind != nil {
		return fmt.Errorf("%s: %w", msg, kind)
	}
	return errors.New(msg)
}

// vmWork asks the VM's node to carry out op on it.
func (e *Engine) vmWork(ctx context.Context, node, op string, vm VM, args any) (workResult, error) {
	req, err := vmWorkRequest(op, vm, args)
	if err != nil {
		return workResult{}, err
	}
	return e.nodeWork(ctx, node, req)
}

// newVMWork is vmWork's request made ready to ride on a commit of the
// caller (newWork); its await waits for the result.
func (e *Engine) newVMWork(ctx context.Context, node, op string, vm VM, args any) (*pendingWork, error) {
	req, err := vmWorkRequest(op, vm, args)
	if err != nil {
		return nil, err
	}
	return e.newWork(ctx, node, req)
}

func vmWorkRequest(op string, vm VM, args any) (WorkRequest, error) {
	b, err := json.Marshal(args)
	if err != nil {
		return WorkRequest{}, err
	}
	return WorkRequest{Op: op, Object: vmWorkObject(vm.Cluster, vm.Name), Args: b, Token: vm.Token}, nil
}
