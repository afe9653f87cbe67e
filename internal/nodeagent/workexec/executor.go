// Package workexec is a node's work executor: it carries out the
// node-work requests the control plane addresses to its node
// (internal/engine/nodework.go) on this machine, one goroutine per
// request, one request at a time per object. A node agent runs one
// (`kayoctl agent --node NAME`, addressed as engine.WorkForAgent, with a
// heartbeat and long-lived mounts, mounts.go); an engine on the embedded
// database runs one per node that has no agent (Local, set as
// engine.Config.LocalExecutor), serving the same records.
//
// The executor schedules; the engine reads and completes the records
// (WorkQueue, FinishWork) and applies each request's work (ApplyWork;
// internal/engine/executor_work.go). It is apart from internal/nodeagent
// because the provider's binary runs it in-process and must not link the
// QEMU runner that package starts.
package workexec

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/privsock"
)

// Config configures a work executor.
type Config struct {
	// Node is the host the executor works for.
	Node string
	// Agent identifies the executor's process in its heartbeat and
	// results (default host/pid).
	Agent string
	// Logf receives what the executor does.
	Logf func(format string, args ...any)
	// Poll is how often an agent's executor polls for requests after a
	// poll found work no poke announced (default 100ms; else
	// engine.WorkAgentTimeout/10: pace.go).
	Poll time.Duration
	// Hook, when set (tests), is called at each phase of a request's
	// work: "before" and "after" it, and its steps ("format",
	// "formatted").
	Hook func(op, phase string)
}

// Executor carries out node-work requests for one node.
type Executor struct {
	e   *engine.Engine
	cfg Config
	// id is what its requests name in For.
	id string
	// agent: a node agent's (heartbeat, socket, polling, long-lived
	// mounts); else an engine's in-process executor, woken by Poke only.
	agent   bool
	wake    chan struct{}
	stopped chan struct{}
	mu      sync.Mutex
	// running: object → ID of the request running; finished: IDs done
	// (pruned when their request is gone).
	running  map[string]string
	finished map[string]bool
	// queued: objects with a request that waits for the running one (a
	// scan starts it once that ends).
	queued  map[string]bool
	workers sync.WaitGroup
	// mounts: an agent's long-lived mounts (mounts.go); nil for an
	// in-process executor, which uses the runtime's idle-detach cache.
	mounts *agentMounts
	// swept: the last sweep of old results (Run's goroutine only).
	swept time.Time
}

// New returns the work executor of a node agent. It does nothing until
// Run.
func New(e *engine.Engine, cfg Config) *Executor {
	if cfg.Poll <= 0 {
		cfg.Poll = 100 * time.Millisecond
	}
	if cfg.Agent == "" {
		host, _ := os.Hostname()
		cfg.Agent = fmt.Sprintf("%s/%d", host, os.Getpid())
	}
	x := newExecutor(e, cfg, engine.WorkForAgent)
	x.agent = true
	x.mounts = newAgentMounts(x)
	return x
}

// Local starts the in-process executor of node for engine e, serving the
// requests addressed to id, until ctx ends: engine.Config.LocalExecutor.
func Local(ctx context.Context, e *engine.Engine, node, id string) engine.Executor {
	return StartLocal(ctx, e, Config{Node: node}, id)
}

// StartLocal is Local with the rest of cfg (tests: a Hook, a Logf).
func StartLocal(ctx context.Context, e *engine.Engine, cfg Config, id string) *Executor {
	if cfg.Agent == "" {
		cfg.Agent = id
	}
	x := newExecutor(e, cfg, id)
	go func() { _ = x.Run(ctx) }()
	return x
}

func newExecutor(e *engine.Engine, cfg Config, id string) *Executor {
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	return &Executor{e: e, cfg: cfg, id: id, wake: make(chan struct{}, 1), stopped: make(chan struct{}),
		running: map[string]string{}, finished: map[string]bool{}, queued: map[string]bool{}}
}

// Poke wakes the executor to look for requests.
func (x *Executor) Poke() {
	select {
	case x.wake <- struct{}{}:
	default:
	}
}

// Stopped is closed once Run has returned.
func (x *Executor) Stopped() <-chan struct{} { return x.stopped }

// Run carries out requests until ctx ends, then waits for the requests
// it runs (whose work contexts end with ctx) and, for an agent, records
// that it stopped.
func (x *Executor) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer close(x.stopped)
	var pace *pollPace // an agent's fallback poll (pace.go)
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
		x.e.WatchWorkRequests(ctx, x.cfg.Node, x.Poke)
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
		if x.agent && time.Since(lastBeat) >= engine.WorkAgentTimeout/10 {
			lastBeat = time.Now()
			if err := x.beat(ctx, false); err != nil && ctx.Err() == nil {
				x.cfg.Logf("work: heartbeat: %v", err)
			}
		}
	}
	return nil
}

// listen opens the agent's poke socket until ctx ends.
func (x *Executor) listen(ctx context.Context) error {
	sock := engine.WorkSocket(x.e.DataDir(), x.cfg.Node)
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
			x.Poke()
		}
	}()
	return nil
}

func (x *Executor) beat(ctx context.Context, stopped bool) error {
	b := engine.WorkAgentBeat{Node: x.cfg.Node, Agent: x.cfg.Agent, PID: os.Getpid(), Time: x.e.Now().UTC()}
	if stopped {
		b.Stopped = b.Time
	}
	return x.e.PutWorkAgentBeat(ctx, b)
}

// sweepEvery is how often an executor has old results swept away.
const sweepEvery = time.Minute

// scan starts every request addressed to this executor that is neither
// running nor finished, and returns how many it started.
func (x *Executor) scan(ctx context.Context) (int, error) {
	sweep := time.Since(x.swept) >= sweepEvery
	if sweep {
		x.swept = time.Now()
	}
	q, err := x.e.WorkQueue(ctx, x.cfg.Node, x.id, sweep)
	if err != nil {
		return 0, err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	seen := make(map[string]bool, len(q))
	started := 0
	for _, w := range q {
		if w.Err != nil {
			x.cfg.Logf("work: %v", w.Err)
			continue
		}
		req := w.Req
		seen[req.ID] = true
		if ctx.Err() != nil || x.finished[req.ID] {
			continue
		}
		if id := x.running[req.Object]; id != "" {
			// A request superseding a running one starts when that ends.
			x.queued[req.Object] = x.queued[req.Object] || id != req.ID
			continue
		}
		if w.Done {
			x.finished[req.ID] = true // done before a restart
			continue
		}
		x.running[req.Object] = req.ID
		started++
		x.workers.Add(1)
		go func() {
			defer x.workers.Done()
			x.execute(ctx, w)
		}()
	}
	for id := range x.finished {
		if !seen[id] {
			delete(x.finished, id)
		}
	}
	return started, nil
}

// execute carries out w and records its result. When ctx ends first (the
// executor stops, as in a crash) nothing is recorded: the next executor
// runs the request again.
func (x *Executor) execute(ctx context.Context, w engine.WorkQueued) {
	req := w.Req
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
			x.Poke()
		}
	}()
	// Deadlines are the caller's context's, in real time (not the
	// engine's clock, which tests set).
	var out engine.WorkOutput
	err := engine.WorkExpired(req, time.Now())
	if err == nil {
		x.hook(req.Op, "before")
		site := engine.WorkSite{Node: x.cfg.Node, Agent: x.cfg.Agent, Phase: func(p string) { x.hook(req.Op, p) }}
		if x.mounts != nil {
			site.Release = x.mounts.release
		}
		out, err = x.e.ApplyWork(ctx, site, req)
		x.hook(req.Op, "after")
		if ctx.Err() != nil {
			return
		}
		if err == nil && req.Op == engine.WorkVolumeFormat && x.mounts != nil {
			x.mounts.poke() // the node's new volume: mount it for good
		}
	}
	if err := x.e.FinishWork(context.WithoutCancel(ctx), x.cfg.Node, x.cfg.Agent, w, out, err); err != nil {
		x.cfg.Logf("work: %v", err)
		return
	}
	finished = true
}

// hook runs the test hook at a phase of a request.
func (x *Executor) hook(op, phase string) {
	if h := x.cfg.Hook; h != nil {
		h(op, phase)
	}
}
