package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor/qemu"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/privsock"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// The qemu hypervisor driver (kayo_cluster.hypervisor = "qemu"). The
// engine in the provider's plugin only asks; the node agents act:
//
//	qemu/<cluster>/req/<node>/<vm>   the request to node's agent (one at a time per VM and node)
//	qemu/<cluster>/res/<node>/<vm>   its result and progress, written by the agent
//	qemu/<cluster>/node/<node>/<vm>  node's view of the VM (QEMUNodeVM), written by the agent
//	qemu/<cluster>/fence/<vm>        the newest ownership token seen for the VM
//	qemu-agents/<node>               the agent's QEMU executor heartbeat
//
// Each driver call writes its request, pokes the agent's unix socket
// (<data_dir>/qemu/<node>.sock; it also polls) and waits for the result,
// reporting the agent's progress (the agent dials the request's notify
// socket after each write of the result; the driver also polls); an agent whose executor heartbeat is
// older than QEMUAgentTimeout is a clear error, not a wait. The agent runs
// one QEMU process per running VM (internal/nodeagent/qemurun), its
// disk served over NBD out of the Kayo FS volume.

// The protocol's records, as the engine's API names them.
type (
	QEMUNodeVM    = qemu.NodeVM
	QEMUAgentBeat = qemu.AgentBeat
	GuestNet      = qemu.GuestNet
)

// QEMUAgentTimeout: an agent whose QEMU runner has not reported for this
// long is down.
const QEMUAgentTimeout = qemu.AgentTimeout

// qemuDriver is the engine side of the qemu driver of one cluster.
type qemuDriver struct {
	e       *Engine
	cluster string
}

var _ hypervisor.Driver = (*qemuDriver)(nil)

// hypervisorFor returns the qemu driver when cluster runs qemu (nil: the
// simulator). A failed read of the cluster is an error, never the
// simulator: a Stop sent to the wrong driver would leave the VM running.
func (e *Engine) hypervisorFor(ctx context.Context, cluster string) (hypervisor.Driver, error) {
	c, err := e.clusterHead(ctx, cluster)
	if err != nil {
		return nil, fmt.Errorf("the hypervisor of cluster %q: %w", cluster, err)
	}
	if c.Hypervisor != HypervisorQEMU {
		return nil, nil
	}
	return &qemuDriver{e: e, cluster: cluster}, nil
}

func (d *qemuDriver) Name() string { return HypervisorQEMU }

// QEMUNodeVMs returns every node's view of the VMs of cluster (name ""
// all VMs), by node then VM.
func (e *Engine) QEMUNodeVMs(ctx context.Context, cluster, name string) ([]QEMUNodeVM, error) {
	recs, _, err := listJSON[QEMUNodeVM](ctx, e.st, qemu.NodePrefix(cluster))
	if err != nil {
		return nil, err
	}
	out := recs[:0]
	for _, r := range recs {
		if name == "" || r.Name == name {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Node != out[j].Node {
			return out[i].Node < out[j].Node
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

func (d *qemuDriver) record(ctx context.Context, node, name string) (QEMUNodeVM, bool, error) {
	var r QEMUNodeVM
	_, err := getJSON(ctx, d.e.st, qemu.NodeKey(d.cluster, node, name), &r)
	if errors.Is(err, store.ErrNotFound) {
		return r, false, nil
	}
	return r, err == nil, err
}

// agentUp reports whether node's agent runs its QEMU executor.
func (e *Engine) qemuAgentUp(ctx context.Context, node string) error {
	var b QEMUAgentBeat
	_, err := getJSON(ctx, e.st, qemu.AgentKey(node), &b)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("node %s: %w: no agent has ever run there; start `kayoctl agent --node %s` (it runs the node's QEMU processes and serves their disks)",
			node, ErrAgentDown, node)
	}
	if err != nil {
		return err
	}
	if !b.Stopped.IsZero() {
		return fmt.Errorf("node %s: %w: its agent (%s) shut down at %s; start `kayoctl agent --node %s`",
			node, ErrAgentDown, b.Agent, b.Stopped.Format(time.RFC3339), node)
	}
	if age := e.now().Sub(b.Time); age > QEMUAgentTimeout {
		return fmt.Errorf("node %s: %w: its agent (%s) last reported %s ago (timeout %s); start `kayoctl agent --node %s`",
			node, ErrAgentDown, b.Agent, age.Round(time.Millisecond), QEMUAgentTimeout, node)
	}
	if b.Error != "" {
		return fmt.Errorf("node %s: its agent cannot run QEMU VMs: %s", node, b.Error)
	}
	return nil
}

// fence refuses tok when a newer token was seen for name and records it
// as the newest otherwise.
func (d *qemuDriver) fence(ctx context.Context, name string, tok hypervisor.Token) error {
	return d.e.retry(ctx, func() error {
		cmps, ops, err := d.fenceOps(ctx, name, tok)
		if err != nil || len(ops) == 0 {
			return err
		}
		_, err = d.e.st.Commit(ctx, cmps, ops)
		return err
	})
}

// fenceOps is fence as the comparison and write of a commit (none when tok
// is recorded already): a request carries them in its own commit.
func (d *qemuDriver) fenceOps(ctx context.Context, name string, tok hypervisor.Token) ([]store.Cmp, []store.Op, error) {
	key := qemu.FenceKey(d.cluster, name)
	var seen hypervisor.Token
	rev, err := getJSON(ctx, d.e.st, key, &seen)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, nil, err
	}
	if tok < seen {
		return nil, nil, fmt.Errorf("VM %q: token %d is older than token %d: %w", name, tok, seen, hypervisor.ErrFenced)
	}
	if tok == seen && rev != 0 {
		return nil, nil, nil
	}
	cmp := store.Absent(key)
	if rev != 0 {
		cmp = store.At(key, rev)
	}
	return []store.Cmp{cmp}, []store.Op{putJSON(key, tok)}, nil
}

// call asks node's agent to carry out req and waits for its result.
func (d *qemuDriver) call(ctx context.Context, node string, req qemu.Request, progress func(hypervisor.Progress)) (qemu.Result, error) {
	e := d.e
	if err := e.qemuAgentUp(ctx, node); err != nil {
		return qemu.Result{}, fmt.Errorf("%s of VM %q: %w", req.Op, req.VM.Name, err)
	}
	req.ID, req.Created, req.By = randomHex(8), e.now().UTC(), e.rt.host+"/"+fmt.Sprint(e.rt.pid)
	if dl, ok := ctx.Deadline(); ok {
		req.Deadline = dl.UTC()
	}
	wake, stop := listenNotify(e.dataDir, &req)
	defer stop()
	// The agent dials Notify after each write of the result; where the
	// database tells of changes (etcd) the write wakes this wait from any
	// machine too. Polling is then the fallback of a lost wake-up, slow:
	// each poll of the embedded database is an open of the file, shared
	// with the agents, and a live migration's wait polled it 200 times in
	// the 5 s of a 1 GiB move (bench/qemu_test.go).
	delay, most := 2*time.Millisecond, 25*time.Millisecond
	if wake != nil {
		delay, most = notifiedPoll, notifiedPollMax
	}
	wctx, unwatch := context.WithCancel(ctx)
	defer unwatch()
	if ch := make(chan struct{}, 1); watchWake(wctx, e.st, qemu.ResKey(d.cluster, node, req.VM.Name), func() { signalWake(ch) }) {
		if wake == nil {
			wake = ch
		} else {
			wake = mergeWake(wctx, wake, ch)
		}
		delay, most = watchedPoll, notifiedPollMax
	}
	// A request with a token records it as the VM's newest (fence) in the
	// same commit, or is refused when a newer one was seen.
	err := e.retry(ctx, func() error {
		var cmps []store.Cmp
		var ops []store.Op
		if req.Token > 0 {
			var err error
			if cmps, ops, err = d.fenceOps(ctx, req.VM.Name, req.Token); err != nil {
				return err
			}
		}
		ops = append(ops, putJSON(qemu.ReqKey(d.cluster, node, req.VM.Name), req), store.Del(qemu.ResKey(d.cluster, node, req.VM.Name)))
		_, err := e.st.Commit(ctx, cmps, ops)
		return err
	})
	if err != nil {
		return qemu.Result{}, err
	}
	if c, err := net.DialTimeout("unix", qemu.AgentSocket(e.dataDir, node), 100*time.Millisecond); err == nil {
		_, _ = c.Write([]byte{1})
		_ = c.Close()
	}
	var lastProg hypervisor.Progress
	nextAlive := time.Now().Add(time.Second)
	for {
		var res qemu.Result
		_, err := getJSON(ctx, e.st, qemu.ResKey(d.cluster, node, req.VM.Name), &res)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return res, err
		}
		if err == nil && res.ID != req.ID {
			var cur qemu.Request
			if _, err := getJSON(ctx, e.st, qemu.ReqKey(d.cluster, node, req.VM.Name), &cur); err == nil && cur.ID != req.ID {
				return res, fmt.Errorf("%s of VM %q on %s: superseded by request %s (%s) of %s: %w", req.Op, req.VM.Name, node, cur.ID, cur.Op, cur.By, ErrBusy)
			}
		}
		if err == nil && res.ID == req.ID {
			if res.Progress != nil && progress != nil && *res.Progress != lastProg {
				lastProg = *res.Progress
				progress(lastProg)
			}
			if res.Done {
				if res.Err != "" {
					return res, qemuError(node, req, res)
				}
				return res, nil
			}
		}
		if time.Now().After(nextAlive) {
			nextAlive = time.Now().Add(time.Second)
			if err := e.qemuAgentUp(ctx, node); err != nil {
				return res, fmt.Errorf("%s of VM %q: the agent stopped answering: %w", req.Op, req.VM.Name, err)
			}
		}
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("%s of VM %q on %s: waiting for its agent: %w", req.Op, req.VM.Name, node, ctx.Err())
		case <-wake:
		case <-time.After(delay):
		}
		delay = min(delay*2, max(delay, most))
	}
}

// notifiedPollMax is the slowest fallback poll of a driver call whose
// result wakes it (its Notify socket, or the database's watch).
const notifiedPollMax = 250 * time.Millisecond

// mergeWake is one wake channel signalled by either of a and b, until
// ctx ends.
func mergeWake(ctx context.Context, a, b <-chan struct{}) <-chan struct{} {
	ch := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-a:
			case <-b:
			}
			signalWake(ch)
		}
	}()
	return ch
}

// listenNotify opens the socket an agent dials when it wrote req's result
// (listenWake in dataDir). wake receives after each dial (nil: no socket).
func listenNotify(dataDir string, req *qemu.Request) (wake <-chan struct{}, stop func()) {
	ch := make(chan struct{}, 1)
	addr, stop := listenWake(dataDir, ch)
	if addr == "" {
		return nil, stop
	}
	req.Notify = addr
	return ch, stop
}

// listenWake opens a socket that sends on ch whenever it is dialled and
// returns its address ("" none: the caller only polls): an agent dials it
// after writing a result the caller waits for. It is a file in dataDir's
// private qemu directory, which an agent on this machine reaches from
// any network namespace (a lab's hosts: an abstract socket, which lives
// in one network namespace, never woke them); where the directory is
// not usable, an abstract socket (Linux).
func listenWake(dataDir string, ch chan struct{}) (addr string, stop func()) {
	serve := func(accept func() (net.Conn, error)) {
		for {
			c, err := accept()
			if err != nil {
				return
			}
			_ = c.Close()
			signalWake(ch)
		}
	}
	if dataDir != "" {
		if ln, err := privsock.Listen(privsock.Path(filepath.Join(dataDir, "qemu"), "wake-"+randomHex(8)+".sock")); err == nil {
			go serve(ln.Accept) // peers of another user are refused
			return ln.Path(), func() { _ = ln.Close(); _ = os.Remove(ln.Path()) }
		}
	}
	if runtime.GOOS != "linux" {
		return "", func() {}
	}
	addr = "@kayo-wake-" + randomHex(8)
	ln, err := net.Listen("unix", addr)
	if err != nil {
		return "", func() {}
	}
	go serve(func() (net.Conn, error) {
		for {
			c, err := ln.Accept()
			if err != nil {
				return nil, err
			}
			// An abstract socket has no file mode: a poke of another
			// user is dropped (it could only cause an early re-read).
			if _, perr := privsock.Check(c.(*net.UnixConn)); perr == nil {
				return c, nil
			}
			_ = c.Close()
		}
	})
	return addr, func() { _ = ln.Close() }
}

// dialWake dials a caller's listenWake socket ("" none).
func dialWake(addr string) {
	if addr == "" {
		return
	}
	if c, err := net.DialTimeout("unix", addr, 50*time.Millisecond); err == nil {
		_ = c.Close()
	}
}

func qemuError(node string, req qemu.Request, res qemu.Result) error {
	var kind error
	switch res.Kind {
	case "fenced":
		kind = hypervisor.ErrFenced
	case "state":
		kind = hypervisor.ErrState
	case "notfound":
		kind = hypervisor.ErrNotFound
	}
	msg := fmt.Sprintf("agent of %s: %s of VM %q: %s", node, req.Op, req.VM.Name, res.Err)
	if kind != nil {
		return fmt.Errorf("%s: %w", msg, kind)
	}
	return errors.New(msg)
}

func (d *qemuDriver) Status(ctx context.Context, node, name string) (hypervisor.Status, error) {
	r, ok, err := d.record(ctx, node, name)
	if err != nil {
		return hypervisor.Status{}, err
	}
	if !ok {
		return hypervisor.Status{}, fmt.Errorf("VM %q on node %q: %w", name, node, hypervisor.ErrNotFound)
	}
	if d.e.qemuAgentUp(ctx, node) != nil {
		// The agent is gone, and its QEMU processes with it.
		r.State = hypervisor.Off
		return r.Status, nil
	}
	res, err := d.call(ctx, node, qemu.Request{Op: qemu.OpStatus, VM: hypervisor.VM{Name: name}}, nil)
	if err != nil {
		if errors.Is(err, hypervisor.ErrNotFound) {
			return hypervisor.Status{}, fmt.Errorf("VM %q on node %q: %w", name, node, hypervisor.ErrNotFound)
		}
		return hypervisor.Status{}, err
	}
	if res.Status == nil {
		return r.Status, nil
	}
	return res.Status.Status, nil
}

func (d *qemuDriver) Start(ctx context.Context, node string, vm hypervisor.VM, tok hypervisor.Token) error {
	if err := d.fenceOthers(ctx, node, vm.Name, tok); err != nil {
		return err
	}
	_, err := d.call(ctx, node, qemu.Request{Op: qemu.OpStart, VM: vm, Token: tok}, progressOf(ctx, vm.Name))
	return err
}

func (d *qemuDriver) Stop(ctx context.Context, node, name string, tok hypervisor.Token) error {
	if err := d.fence(ctx, name, tok); err != nil {
		return err
	}
	if _, ok, err := d.record(ctx, node, name); err != nil || !ok {
		return err
	}
	if d.e.qemuAgentUp(ctx, node) != nil {
		return nil // the agent is gone, and its QEMU processes with it
	}
	_, err := d.call(ctx, node, qemu.Request{Op: qemu.OpStop, VM: hypervisor.VM{Name: name}, Token: tok}, nil)
	return err
}

func (d *qemuDriver) Discard(ctx context.Context, node, name string) error {
	key := qemu.NodeKey(d.cluster, node, name)
	var r QEMUNodeVM
	rev, err := getJSON(ctx, d.e.st, key, &r)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if r.State == hypervisor.Off && r.PID == 0 {
		// Already stopped there (the source of a migration, fenced before
		// the target resumed): only the record is left, no agent round trip.
		_, err := d.e.st.Commit(ctx, []store.Cmp{store.At(key, rev)}, []store.Op{store.Del(key)})
		if errors.Is(err, store.ErrConflict) {
			return d.Discard(ctx, node, name) // the agent wrote it meanwhile
		}
		return err
	}
	if d.e.qemuAgentUp(ctx, node) != nil {
		// Its QEMU processes died with the agent (they are killed when it
		// exits): only the record is left.
		_, err := d.e.st.Commit(ctx, nil, []store.Op{store.Del(qemu.NodeKey(d.cluster, node, name))})
		return err
	}
	_, err = d.call(ctx, node, qemu.Request{Op: qemu.OpDiscard, VM: hypervisor.VM{Name: name}}, nil)
	return err
}

// fenceOthers stops the VM's QEMU on every node but keep (and refuses its
// disk writes there): the source of a migration is fenced before the
// target resumes, so two QEMU processes never run one VM.
func (d *qemuDriver) fenceOthers(ctx context.Context, keep, name string, tok hypervisor.Token) error {
	recs, err := d.e.QEMUNodeVMs(ctx, d.cluster, name)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if r.Node == keep || (r.State != hypervisor.Running && r.State != hypervisor.Paused && r.State != qemu.Incoming && r.State != hypervisor.Received) {
			continue
		}
		if d.e.qemuAgentUp(ctx, r.Node) != nil {
			continue // its QEMU processes died with the agent
		}
		if _, err := d.call(ctx, r.Node, qemu.Request{Op: qemu.OpFence, VM: hypervisor.VM{Name: name}, Token: tok}, nil); err != nil {
			return fmt.Errorf("fencing VM %q on %s before it runs on %s: %w", name, r.Node, keep, err)
		}
	}
	return nil
}

func (d *qemuDriver) Save(ctx context.Context, node, name string, tok hypervisor.Token, _ hypervisor.StateFile, progress func(hypervisor.Progress)) (hypervisor.SaveResult, error) {
	t0 := time.Now()
	res, err := d.call(ctx, node, qemu.Request{Op: qemu.OpSave, VM: hypervisor.VM{Name: name}, Token: tok}, progress)
	if err != nil {
		return hypervisor.SaveResult{}, err
	}
	return hypervisor.SaveResult{Bytes: res.Bytes, DurationMs: time.Since(t0).Milliseconds()}, nil
}

func (d *qemuDriver) Restore(ctx context.Context, node string, vm hypervisor.VM, tok hypervisor.Token, _ hypervisor.StateFile, progress func(hypervisor.Progress)) error {
	if err := d.fenceOthers(ctx, node, vm.Name, tok); err != nil {
		return err
	}
	_, err := d.call(ctx, node, qemu.Request{Op: qemu.OpRestore, VM: vm, Token: tok}, progress)
	return err
}

func (d *qemuDriver) PreCopy(ctx context.Context, from, to hypervisor.Node, vm hypervisor.VM, tok hypervisor.Token, progress func(hypervisor.Progress)) (hypervisor.LiveResult, error) {
	if from.ProcessorVendor != to.ProcessorVendor {
		return hypervisor.LiveResult{}, fmt.Errorf("VM %q from %s (%s) to %s (%s): %w", vm.Name, from.Name, from.ProcessorVendor,
			to.Name, to.ProcessorVendor, hypervisor.ErrIncompatible)
	}
	// Both agents must be there before anything starts.
	for _, n := range []string{from.Name, to.Name} {
		if err := d.e.qemuAgentUp(ctx, n); err != nil {
			return hypervisor.LiveResult{}, err
		}
	}
	in, err := d.call(ctx, to.Name, qemu.Request{Op: qemu.OpIncoming, VM: vm, Token: tok}, progress)
	if err != nil {
		return hypervisor.LiveResult{}, err
	}
	out, err := d.call(ctx, from.Name, qemu.Request{Op: qemu.OpMigrate, VM: vm, Token: tok, Addr: in.Addr, Port: in.Port}, progress)
	if err != nil {
		return hypervisor.LiveResult{}, err
	}
	if out.Live == nil {
		return hypervisor.LiveResult{}, fmt.Errorf("live migration of VM %q: the agent of %s reported no result", vm.Name, from.Name)
	}
	return hypervisor.LiveResult{Plan: *out.Live}, nil
}

func (d *qemuDriver) Resume(ctx context.Context, node string, vm hypervisor.VM, tok hypervisor.Token) error {
	if err := d.fenceOthers(ctx, node, vm.Name, tok); err != nil {
		return err
	}
	_, err := d.call(ctx, node, qemu.Request{Op: qemu.OpResume, VM: vm, Token: tok}, progressOf(ctx, vm.Name))
	return err
}

// QEMUProcesses lists the QEMU processes running VM name of cluster, as
// the agents report them ("node pid" pairs): tests check there is one.
func (e *Engine) QEMUProcesses(ctx context.Context, cluster, name string) ([]string, error) {
	recs, err := e.QEMUNodeVMs(ctx, cluster, name)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range recs {
		if r.PID > 0 && r.State != hypervisor.Off && r.State != hypervisor.Saved {
			out = append(out, fmt.Sprintf("%s pid %d (%s)", r.Node, r.PID, r.State))
		}
	}
	return out, nil
}

// QEMUAgents returns the QEMU executor heartbeat of every node that has
// one, by node (kayoctl status shows each node's accelerator).
func (e *Engine) QEMUAgents(ctx context.Context) (map[string]QEMUAgentBeat, error) {
	beats, _, err := listJSON[QEMUAgentBeat](ctx, e.st, qemu.AgentsPrefix)
	if err != nil {
		return nil, err
	}
	out := make(map[string]QEMUAgentBeat, len(beats))
	for _, b := range beats {
		out[b.Node] = b
	}
	return out, nil
}
