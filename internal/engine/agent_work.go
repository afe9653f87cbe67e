package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/privsock"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// The work executor of a node: it carries out the node-work requests
// addressed to it (nodework.go) on this machine, one goroutine per
// request, one request at a time per object. The node agent runs one
// (`kayoctl agent --node NAME`, addressed as workForAgent, with a
// heartbeat); an engine on the embedded database runs one per node that
// has no agent (localExecutor), serving the same records.
//
// It lives in package engine, not internal/nodeagent, because the work
// it does needs the engine's process state (the Runtime's mount cache and
// per-volume serialisation, volume_mounts.go) and unexported record
// helpers, and because an engine on the embedded database must start it
// itself (the engine cannot import a package that imports it); the move
// waits for docs/ARCHITECTURE.md, "Planned: the node agent out of
// internal/engine", step 1.

// WorkExecutorConfig configures a node agent's work executor.
type WorkExecutorConfig struct {
	// Node is the host the executor works for.
	Node string
	// Agent identifies the agent process in its heartbeat.
	Agent string
	// Logf receives what the executor does.
	Logf func(format string, args ...any)
	// Poll is how often requests are polled, after a poll found work no
	// poke announced (default 100ms; else WorkAgentTimeout/10:
	// nodework_wake.go).
	Poll time.Duration
}

// WorkExecutor carries out node-work requests for one node.
type WorkExecutor struct {
	e   *Engine
	cfg WorkExecutorConfig
	// id is what requests name in For.
	id string
	// agent: the node agent's (heartbeat, socket, polling); else an
	// engine's in-process executor, woken by channel only.
	agent   bool
	wake    chan struct{}
	stopped chan struct{}
	cancel  context.CancelFunc
	mu      sync.Mutex
	// running: object → ID of the request running; finished: IDs done
	// (pruned when their request is gone).
	running  map[string]string
	finished map[string]bool
	// queued: objects with a request that waits for the running one (a
	// scan starts it once that ends).
	queued  map[string]bool
	workers sync.WaitGroup
	// mounts: an agent's long-lived mounts (agent_mounts.go); nil for an
	// in-process executor, which uses the runtime's idle-detach cache.
	mounts *agentMounts
	// swept: the last sweep of old results (Run's goroutine only).
	swept time.Time
}

// NewWorkExecutor returns the work executor of a node agent. It does
// nothing until Run.
func (e *Engine) NewWorkExecutor(cfg WorkExecutorConfig) *WorkExecutor {
	if cfg.Poll <= 0 {
		cfg.Poll = 100 * time.Millisecond
	}
	if cfg.Agent == "" {
		cfg.Agent = fmt.Sprintf("%s/%d", e.rt.host, e.rt.pid)
	}
	x := newWorkExecutor(e, cfg, workForAgent)
	x.agent = true
	x.mounts = newAgentMounts(x)
	return x
}

func newWorkExecutor(e *Engine, cfg WorkExecutorConfig, id string) *WorkExecutor {
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	return &WorkExecutor{e: e, cfg: cfg, id: id, wake: make(chan struct{}, 1), stopped: make(chan struct{}),
		running: map[string]string{}, finished: map[string]bool{}, queued: map[string]bool{}}
}

func (x *WorkExecutor) poke() {
	select {
	case x.wake <- struct{}{}:
	default:
	}
}

// Run carries out requests until ctx ends, then waits for the requests
// it runs (whose work contexts end with ctx) and, for an agent, records
// that it stopped.
func (x *WorkExecutor) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer close(x.stopped)
	var pace *pollPace // an agent's fallback poll (nodework_wake.go)
	if x.agent {
		if err := x.listen(ctx); err != nil {
			x.cfg.Logf("work: no request socket (requests are polled): %v", err)
		}
		if err := x.beat(ctx, false); err != nil {
			x.cfg.Logf("work: heartbeat: %v", err)
		}
		defer func() {
			// Recorded after the process was asked to stop: that context
			// has ended.
			bctx, bcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = x.beat(bctx, true)
			bcancel()
		}()
		pace = newPollPace(x.cfg.Poll)
		watchWake(ctx, x.e.st, nodeWorkReqPrefix(x.cfg.Node), x.poke)
		x.cfg.Logf("work: executor ready (VM files, volume formats, changes and mounts of node %s)", x.cfg.Node)
	}
	if x.mounts != nil {
		// Its mounts are let go after the work that uses them ended
		// (defers run last first), before the heartbeat says it stopped.
		mctx, mstop := context.WithCancel(context.WithoutCancel(ctx))
		mdone := make(chan struct{})
		go func() { defer close(mdone); x.mounts.run(mctx) }()
		defer func() { mstop(); <-mdone }()
	}
	defer x.workers.Wait()
	lastBeat := time.Now()
	polled := false
	for ctx.Err() == nil { // a stopping executor starts nothing
		started, err := x.scan(ctx)
		if err != nil && ctx.Err() == nil {
			x.cfg.Logf("work: reading requests: %v", err)
		}
		var pollC <-chan time.Time
		if pace != nil {
			pollC = time.After(pace.next(time.Now(), polled && started > 0))
		}
		polled = false
		select {
		case <-ctx.Done():
		case <-x.wake:
		case <-pollC:
			polled = true
		}
		if x.agent && time.Since(lastBeat) >= WorkAgentTimeout/10 {
			lastBeat = time.Now()
			if err := x.beat(ctx, false); err != nil && ctx.Err() == nil {
				x.cfg.Logf("work: heartbeat: %v", err)
			}
		}
	}
	return nil
}

// listen opens the agent's poke socket until ctx ends.
func (x *WorkExecutor) listen(ctx context.Context) error {
	sock := workSocket(x.e.dataDir, x.cfg.Node)
	if err := privsock.Dir(filepath.Dir(sock)); err != nil {
		return err
	}
	ln, err := privsock.Listen(sock)
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		_ = ln.Close()
		_ = os.Remove(sock)
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
			x.poke()
		}
	}()
	return nil
}

func (x *WorkExecutor) beat(ctx context.Context, stopped bool) error {
	b := WorkAgentBeat{Node: x.cfg.Node, Agent: x.cfg.Agent, PID: os.Getpid(), Time: x.e.now().UTC()}
	if stopped {
		b.Stopped = b.Time
	}
	_, err := x.e.st.Commit(ctx, nil, []store.Op{putJSON(nodeWorkAgentKey(x.cfg.Node), b)})
	return err
}

// scan starts every request addressed to this executor that is neither
// running nor finished, and returns how many it started.
func (x *WorkExecutor) scan(ctx context.Context) (int, error) {
	// One read: the node's requests and results.
	kvs, _, err := x.e.st.List(ctx, nodeWorkPrefix+x.cfg.Node+"/")
	if err != nil {
		return 0, err
	}
	results := map[string]store.KV{}
	reqPrefix, resPrefix := nodeWorkReqPrefix(x.cfg.Node), nodeWorkResKey(x.cfg.Node, "")
	for _, kv := range kvs {
		if obj, ok := strings.CutPrefix(kv.Key, resPrefix); ok {
			results[obj] = kv
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	seen := make(map[string]bool, len(kvs))
	started := 0
	for _, kv := range kvs {
		if !strings.HasPrefix(kv.Key, reqPrefix) {
			continue
		}
		var req workRequest
		if err := decode(kv, &req); err != nil {
			x.cfg.Logf("work: %v", err)
			continue
		}
		seen[req.ID] = true
		if ctx.Err() != nil || req.For != x.id || x.finished[req.ID] {
			continue
		}
		if id := x.running[req.Object]; id != "" {
			// A request superseding a running one starts when that ends.
			x.queued[req.Object] = x.queued[req.Object] || id != req.ID
			continue
		}
		var prev workResult
		if r, ok := results[req.Object]; ok {
			if err := decode(r, &prev); err != nil {
				x.cfg.Logf("work: %v", err)
			}
		}
		if prev.ID == req.ID && prev.Done {
			x.finished[req.ID] = true // done before a restart
			continue
		}
		x.running[req.Object] = req.ID
		started++
		x.workers.Add(1)
		go func() {
			defer x.workers.Done()
			x.execute(ctx, req, kv.ModRevision)
		}()
	}
	for id := range x.finished {
		if !seen[id] {
			delete(x.finished, id)
		}
	}
	x.sweep(ctx, kvs, reqPrefix, resPrefix)
	return started, nil
}

// sweep deletes the results of the node whose request is gone and that
// are older than workResultKeep (at most once a minute).
func (x *WorkExecutor) sweep(ctx context.Context, kvs []store.KV, reqPrefix, resPrefix string) {
	if time.Since(x.swept) < workResultKeep {
		return
	}
	x.swept = time.Now()
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
		if err := decode(kv, &r); err == nil && x.e.now().Sub(r.Updated) < workResultKeep {
			continue
		}
		cmps = append(cmps, store.At(kv.Key, kv.ModRevision))
		ops = append(ops, store.Del(kv.Key))
	}
	if len(ops) > 0 {
		_, _ = x.e.st.Commit(ctx, cmps, ops) // a conflict: the next sweep
	}
}

// execute carries out req unless its result is recorded already, and
// records the result. When ctx ends first (the executor stops, as in a
// crash) nothing is recorded: the next executor runs the request again.
func (x *WorkExecutor) execute(ctx context.Context, req workRequest, rev int64) {
	finished := false
	defer func() {
		x.mu.Lock()
		if x.running[req.Object] == req.ID {
			delete(x.running, req.Object)
		}
		if finished {
			x.finished[req.ID] = true
		}
		// Only a request that waited for this one needs a scan now.
		again := x.queued[req.Object]
		delete(x.queued, req.Object)
		x.mu.Unlock()
		if again {
			x.poke()
		}
	}()
	resKey := nodeWorkResKey(x.cfg.Node, req.Object)
	res := workResult{ID: req.ID, Done: true, Executor: x.cfg.Agent}
	// Deadlines are the caller's context's, in real time (not the
	// engine's clock, which tests set).
	if !req.Deadline.IsZero() && time.Now().After(req.Deadline) {
		res.Err, res.Kind = fmt.Sprintf("%s of %s: %v (deadline %s)", req.Op, req.Object, ErrWorkExpired, req.Deadline.Format(time.RFC3339)), workKindExpired
	} else {
		dl := req.Deadline
		if dl.IsZero() {
			dl = time.Now().Add(workRequestTimeout)
		}
		wctx, cancel := context.WithDeadline(withExecutor(ctx, x.cfg.Node), dl)
		var sink *reportSink // the caller records the volume reports
		if req.ReportBack {
			wctx, sink = withReportSink(wctx)
		}
		x.hook(req, "before")
		out, err := x.do(wctx, req)
		cancel()
		x.hook(req, "after")
		if ctx.Err() != nil {
			return
		}
		res.Outcome, res.Reports = out, sink.reports()
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
	}
	res.Updated = x.e.now().UTC()
	reqKey := nodeWorkReqKey(x.cfg.Node, req.Object)
	// The completion: the result, and the request gone, in one commit.
	_, err := x.e.st.Commit(context.WithoutCancel(ctx), []store.Cmp{store.At(reqKey, rev)}, []store.Op{putJSON(resKey, res), store.Del(reqKey)})
	switch {
	case errors.Is(err, store.ErrConflict):
		// Superseded or withdrawn meanwhile: its caller has gone.
	case err != nil:
		x.cfg.Logf("work: recording the result of %s of %s: %v", req.Op, req.Object, err)
		return
	}
	finished = true
	if ch, ok := x.e.work.waits.Load(req.ID); ok {
		select {
		case ch.(chan workResult) <- res: // its caller is of this engine
		default:
		}
	}
	dialWake(req.Notify)
}

// hook runs the engine's test hook at a phase of a request.
func (x *WorkExecutor) hook(req workRequest, phase string) {
	if h := x.e.workHook; h != nil {
		h(x, req.Op, phase)
	}
}

func workErrorKind(err error) string {
	switch {
	case errors.Is(err, hypervisor.ErrFenced):
		return workKindFenced
	case errors.Is(err, ErrNotFound):
		return workKindNotFound
	case errors.Is(err, kayofs.ErrNotEmpty):
		return workKindNotEmpty
	}
	return ""
}

// do dispatches req to its operation.
func (x *WorkExecutor) do(ctx context.Context, req workRequest) (json.RawMessage, error) {
	switch req.Op {
	case workVMFiles:
		var a vmFilesArgs
		if err := json.Unmarshal(req.Args, &a); err != nil {
			return nil, fmt.Errorf("%s: arguments: %w", req.Op, err)
		}
		return nil, x.e.writeFilesHere(ctx, a.VM, a.Fresh)
	case workVMRemoveFiles:
		var vm VM
		if err := json.Unmarshal(req.Args, &vm); err != nil {
			return nil, fmt.Errorf("%s: arguments: %w", req.Op, err)
		}
		return nil, x.e.removeFilesHere(ctx, vm)
	case workVolumeChange:
		var a volumeChangeArgs
		if err := json.Unmarshal(req.Args, &a); err != nil {
			return nil, fmt.Errorf("%s: arguments: %w", req.Op, err)
		}
		// The volume as this node resolves it (its LUN's path here).
		v, err := x.e.GetVolume(ctx, a.Volume)
		if err != nil {
			return nil, err
		}
		return nil, x.e.changeOnDiskHere(ctx, v, a.Spec, x.cfg.Node)
	case workVolumeFormat:
		var a volumeFormatArgs
		if err := json.Unmarshal(req.Args, &a); err != nil {
			return nil, fmt.Errorf("%s: arguments: %w", req.Op, err)
		}
		out, err := x.formatHere(ctx, req, a)
		if err != nil {
			return nil, err
		}
		if x.mounts != nil {
			x.mounts.poke() // the node's new volume: mount it for good
		}
		return json.Marshal(out)
	case workVolumeRelease:
		var a volumeReleaseArgs
		if err := json.Unmarshal(req.Args, &a); err != nil {
			return nil, fmt.Errorf("%s: arguments: %w", req.Op, err)
		}
		return nil, x.releaseHere(ctx, a)
	case workVolumeSlots:
		var a volumeSlotsArgs
		if err := json.Unmarshal(req.Args, &a); err != nil {
			return nil, fmt.Errorf("%s: arguments: %w", req.Op, err)
		}
		out, err := x.e.slotsHere(ctx, a, x.cfg.Agent)
		if err != nil {
			return nil, err
		}
		return json.Marshal(out)
	case workLUNImageRemove:
		var v Volume
		if err := json.Unmarshal(req.Args, &v); err != nil {
			return nil, fmt.Errorf("%s: arguments: %w", req.Op, err)
		}
		return nil, x.e.lunImageHere(v)
	case workVolumeFileRemove:
		var a volumeFileRemoveArgs
		if err := json.Unmarshal(req.Args, &a); err != nil {
			return nil, fmt.Errorf("%s: arguments: %w", req.Op, err)
		}
		return nil, x.e.volumeFileRemoveHere(ctx, a, x.cfg.Node)
	}
	return nil, fmt.Errorf("operation %q is unknown to this executor (an older kayoctl agent than the control plane? upgrade it)", req.Op)
}

// Stop ends the executor as a crash would (tests): requests it runs get
// no result.
func (x *WorkExecutor) Stop() {
	if x.cancel != nil {
		x.cancel()
	}
}

// localWork holds an engine's in-process executors (embedded database,
// no agent) and its callers waiting for results.
type localWork struct {
	mu     sync.Mutex
	life   context.Context
	stop   context.CancelFunc
	closed bool
	id     string
	execs  map[string]*WorkExecutor
	// waits: request ID → chan workResult, the waiting callers of this
	// engine.
	waits sync.Map
	// noAgent: node → time.Time until which it is taken to have no agent
	// (workTarget).
	noAgent sync.Map
}

// localExecutor returns this engine's running executor for node,
// starting one when there is none (or it stopped).
func (e *Engine) localExecutor(node string) (*WorkExecutor, error) {
	w := &e.work
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, fmt.Errorf("node %s: the engine is closed", node)
	}
	if w.life == nil {
		w.life, w.stop = context.WithCancel(context.Background()) // ends with Close
		w.id = fmt.Sprintf("local:%s/%d/%s", e.rt.host, e.rt.pid, randomHex(4))
		w.execs = map[string]*WorkExecutor{}
	}
	if x := w.execs[node]; x != nil {
		select {
		case <-x.stopped:
		default:
			return x, nil
		}
	}
	x := newWorkExecutor(e, WorkExecutorConfig{Node: node, Agent: w.id}, w.id)
	ctx, cancel := context.WithCancel(w.life)
	x.cancel = cancel
	w.execs[node] = x
	go func() { _ = x.Run(ctx) }()
	return x, nil
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
		<-x.stopped
	}
}
