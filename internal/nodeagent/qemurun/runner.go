// Package qemurun is the QEMU runner of a node agent (kayoctl agent): it
// carries out the requests the engine's qemu driver records for its node
// (internal/engine/qemu_driver.go; the records and keys are
// internal/engine/hypervisor/qemu/protocol.go's), runs one
// QEMU process per VM (TCG, everything on 127.0.0.1, QMP socket and logs
// under <data_dir>/qemu/<node>/) and serves each VM's VHD out of the Kayo FS
// volume over NBD: reads and writes go through internal/engine/vhd on a
// kayofs file (a dynamic VHD allocates blocks and updates its BAT as the
// guest writes). The agent mounts the volume in its own slot, named
// "<node>#qemu", for as long as it serves a disk from it.
//
// Fencing: an export serves one ownership token; when the VM's token moves
// on (the driver's fence request, or the fence record seen on a sweep) the
// agent kills that QEMU and refuses every later write of the export.
package qemurun

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor/qemu"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/privsock"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/record"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/vhd"
)

// MountSuffix names the agent's own Kayo FS slot: node + suffix.
const MountSuffix = "#qemu"

// qemuRequestTimeout bounds a request that carries no deadline.
const qemuRequestTimeout = 10 * time.Minute

// Config configures the executor.
type Config struct {
	// Guest is the kernel + initramfs VMs boot; found with
	// qemu.FindGuest(<data_dir>/guest) when empty.
	Guest qemu.Guest
	// Logf receives what the executor does.
	Logf func(format string, args ...any)
	// Poll is how often requests are polled besides pokes (default 100ms:
	// the driver pokes the agent's socket with every request; polling is
	// the fallback, and its reads compete with the guests for CPU).
	Poll time.Duration
	// MigrationAddress is the IP address incoming live migrations listen
	// on: the host's migration network (default 127.0.0.1).
	MigrationAddress string
}

type qemuVolume struct {
	fd   *kayofs.FileDevice
	fv   *kayofs.Volume
	refs int
}

type qemuVMDisk struct {
	d *vhd.Disk
	f *kayofs.File
}

func (q qemuVMDisk) ReadAt(p []byte, off int64) (int, error)  { return q.d.ReadAt(p, off) }
func (q qemuVMDisk) WriteAt(p []byte, off int64) (int, error) { return q.d.WriteAt(p, off) }
func (q qemuVMDisk) Size() int64                              { return q.d.Size() }
func (q qemuVMDisk) Flush() error                             { return q.f.Sync() }

type qemuVMRun struct {
	name    string
	m       *qemu.Machine
	export  *qemu.Export
	volume  string
	rec     qemu.NodeVM
	reqs    chan qemu.Request
	mu      sync.Mutex
	cancel  context.CancelFunc
	curOp   string
	handled string
	// dying: a fenced QEMU, killed but maybe not gone yet (worker only).
	dying *qemu.Machine
	// drives: the data disk and DVD exports; machine: what QEMU
	// attaches and how it boots (disks.go).
	drives  map[string]*qemu.Export
	machine qemu.Drives
	// stopAccept ends a target's wait for its live migration's source
	// (worker only; nil none).
	stopAccept context.CancelFunc
	// batch: a request runs; its record write (recOp) waits for the
	// commit of its result (worker goroutine only).
	batch bool
	recOp *store.Op
}

// Runner is the executor of one node agent.
type Runner struct {
	e       *engine.Engine
	st      store.Store
	node    string
	agentID string
	cfg     Config
	bin     string
	dir     string
	nbd     *qemu.Server
	mu      sync.Mutex
	cluster string
	vms     map[string]*qemuVMRun
	vols    map[string]*qemuVolume
	mountMu sync.Mutex // serialises mount (held while it waits for a lease)
	wake    chan struct{}
	// seenFence: the fence tokens the sweep has passed on (Run's goroutine only).
	seenFence map[string]hypervisor.Token
	initErr   string
	// accel: kvm or tcg, for every VM of the node (disks.go).
	accel string
	// life ends when Run returns: work that outlives a request (a
	// target's wait for its migration's source) ends with it too.
	life context.Context
	// workers: the VMs' worker goroutines (shutdown waits for them).
	workers sync.WaitGroup
	// net: the node's switches and taps (net.go); nil when
	// the host cannot make them.
	net *qemuNet
}

// New returns the QEMU runner of node for agent process agentID (the ID
// its node agent heartbeats as). It does nothing until Run.
func New(e *engine.Engine, node, agentID string, cfg Config) *Runner {
	if cfg.Poll <= 0 {
		cfg.Poll = 100 * time.Millisecond
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.MigrationAddress == "" {
		cfg.MigrationAddress = "127.0.0.1"
	}
	return &Runner{e: e, st: e.Store(), node: node, agentID: agentID, cfg: cfg,
		dir: filepath.Join(e.DataDir(), "qemu", node), vms: map[string]*qemuVMRun{}, vols: map[string]*qemuVolume{},
		wake: make(chan struct{}, 1), seenFence: map[string]hypervisor.Token{}, net: newQEMUNet()}
}

// Run carries out requests until ctx ends; then it stops every QEMU
// process it runs. It returns only when ctx ends (or the node's files
// cannot be created).
func (q *Runner) Run(ctx context.Context) error {
	life, stop := context.WithCancel(ctx)
	defer stop()
	q.life = life
	// Sockets, guest consoles and the migration key live here: only the
	// agent's user may enter.
	if err := privsock.Dir(q.dir); err != nil {
		return err
	}
	if b, err := qemu.Binary(); err != nil {
		q.initErr = err.Error()
	} else {
		q.bin = b
	}
	q.accel = qemuAccel()
	if q.cfg.Guest.Kernel == "" && q.initErr == "" {
		// The lab's test kernel, for VMs with a blank disk: without it
		// they boot their firmware (disks.go).
		g, err := qemu.FindGuest(filepath.Join(q.e.DataDir(), "guest"))
		if err != nil {
			q.cfg.Logf("qemu: no test guest (VMs with a blank disk boot their firmware only): %v", err)
		}
		q.cfg.Guest = g
	}
	srv, err := qemu.ListenNBD(privsock.Path(q.dir, "nbd.sock"))
	if err != nil {
		return err
	}
	srv.Logf = q.cfg.Logf
	q.nbd = srv
	sock := qemu.AgentSocket(q.e.DataDir(), q.node)
	if ln, err := privsock.Listen(sock); err != nil {
		q.cfg.Logf("qemu: no request socket (requests are polled): %v", err)
	} else {
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				_ = c.Close()
				select {
				case q.wake <- struct{}{}:
				default:
				}
			}
		}()
		defer func() { _ = ln.Close(); _ = os.Remove(sock) }()
	}
	if q.initErr != "" {
		q.cfg.Logf("qemu: cannot run VMs: %s", q.initErr)
	} else {
		q.cfg.Logf("qemu: executor ready (%s, %s, test guest %s, NBD on %s, live migrations to %s, files in %s)", q.bin, q.accel,
			filepath.Dir(q.cfg.Guest.Kernel), srv.Path(), q.cfg.MigrationAddress, q.dir)
	}
	defer q.shutdown()
	go q.guestLoop(life) // its probes wait for guests: not on this loop
	q.adoptOrphans(ctx)
	if q.initErr == "" {
		q.cfg.Logf("qemu: accepting VMs (heartbeat written)")
	}
	var lastBeat, lastSweep, lastNet time.Time
	for {
		if time.Since(lastBeat) >= 500*time.Millisecond {
			lastBeat = time.Now()
			q.beat(ctx)
		}
		if time.Since(lastNet) >= 2*time.Second {
			lastNet = time.Now()
			q.mu.Lock()
			cluster := q.cluster
			q.mu.Unlock()
			q.sweepNet(ctx, cluster)
		}
		if time.Since(lastSweep) >= 250*time.Millisecond {
			lastSweep = time.Now()
			q.sweepFences(ctx)
		}
		q.poll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-q.wake:
		case <-time.After(q.cfg.Poll):
		}
	}
}

func (q *Runner) beat(ctx context.Context) {
	cluster := ""
	if h, err := q.e.GetHost(ctx, q.node); err == nil {
		cluster = h.Cluster
	}
	q.mu.Lock()
	q.cluster = cluster
	q.mu.Unlock()
	b := qemu.AgentBeat{Node: q.node, Agent: q.agentID, PID: os.Getpid(), Cluster: cluster, Time: q.e.Now().UTC(), Error: q.initErr,
		Accel: q.accel}
	_, _ = q.st.Commit(ctx, nil, []store.Op{record.Put(qemu.AgentKey(q.node), b)})
}

// adoptOrphans marks the VMs a previous agent process of this node left
// running (its QEMU processes died with it) as failed (stop.go).
func (q *Runner) adoptOrphans(ctx context.Context) {
	q.beat(ctx)
	if q.cluster == "" {
		return
	}
	q.adoptRecords(ctx, q.cluster)
}

func (q *Runner) shutdown() {
	q.mu.Lock()
	vms := q.vms
	q.mu.Unlock()
	for _, v := range vms {
		v.mu.Lock()
		if v.cancel != nil {
			v.cancel()
		}
		if v.m != nil {
			v.m.Kill()
		}
		v.mu.Unlock()
	}
	q.recordShutdown() // each VM stopped here reads off, with why (stop.go)
	_ = q.nbd.Close()
	q.mu.Lock()
	for id, vol := range q.vols {
		_ = vol.fv.Unmount()
		_ = vol.fd.Close()
		delete(q.vols, id)
	}
	q.mu.Unlock()
}

// poll dispatches new requests to their VM's worker. A request arriving
// while a live migration of the same VM runs here cancels it (the
// provider that asked for it is gone, and the new one decides).
func (q *Runner) poll(ctx context.Context) {
	q.mu.Lock()
	cluster := q.cluster
	q.mu.Unlock()
	if cluster == "" {
		return
	}
	reqs, _, err := record.List[qemu.Request](ctx, q.st, qemu.ReqPrefix(cluster, q.node))
	if err != nil {
		return
	}
	for _, r := range reqs {
		v := q.vm(ctx, cluster, r.VM.Name)
		v.mu.Lock()
		if v.handled == r.ID {
			v.mu.Unlock()
			continue
		}
		v.handled = r.ID
		if v.cancel != nil && (v.curOp == qemu.OpMigrate) {
			v.cancel()
		}
		v.mu.Unlock()
		v.reqs <- r
	}
}

func (q *Runner) vm(ctx context.Context, cluster, name string) *qemuVMRun {
	q.mu.Lock()
	defer q.mu.Unlock()
	if v, ok := q.vms[name]; ok {
		return v
	}
	v := &qemuVMRun{name: name, reqs: make(chan qemu.Request, 64)}
	var r qemu.NodeVM
	if _, err := record.Get(ctx, q.st, qemu.NodeKey(cluster, q.node, name), &r); err == nil {
		v.rec = r
		// A result for the request already there was written by a previous
		// agent process: do not repeat it.
		var res qemu.Result
		if _, err := record.Get(ctx, q.st, qemu.ResKey(cluster, q.node, name), &res); err == nil && res.Done {
			v.handled = res.ID
		}
	}
	q.vms[name] = v
	q.workers.Add(1)
	go func() {
		defer q.workers.Done()
		q.worker(ctx, cluster, v)
	}()
	return v
}

func (q *Runner) worker(ctx context.Context, cluster string, v *qemuVMRun) {
	for {
		var r qemu.Request
		select {
		case <-ctx.Done():
			return
		case r = <-v.reqs:
		}
		if r.ID == "" {
			q.sweep(ctx, cluster, v, r.Token)
			continue
		}
		// Every wait of the request ends by its deadline.
		rctx, cancel := context.WithTimeout(ctx, qemuRequestTimeout)
		if !r.Deadline.IsZero() {
			rctx, cancel = context.WithDeadline(ctx, r.Deadline)
		}
		v.mu.Lock()
		v.cancel, v.curOp = cancel, r.Op
		v.mu.Unlock()
		res := qemu.Result{ID: r.ID}
		report := func(p hypervisor.Progress) {
			pp := p
			res.Progress = &pp
			res.Updated = q.e.Now().UTC()
			_, _ = q.st.Commit(ctx, nil, []store.Op{record.Put(qemu.ResKey(cluster, q.node, r.VM.Name), res)})
			r.NotifyDriver()
		}
		if r.Op != qemu.OpStatus {
			q.cfg.Logf("qemu: %s %s (token %d, request %s)", r.Op, r.VM.Name, r.Token, r.ID)
		}
		v.batch, v.recOp = true, nil
		err := q.do(rctx, cluster, v, r, &res, report)
		if err == nil {
			q.guestToken(r) // net.go
		}
		cancel()
		v.mu.Lock()
		v.cancel, v.curOp = nil, ""
		v.mu.Unlock()
		res.Done, res.Updated = true, q.e.Now().UTC()
		if err != nil {
			res.Err = err.Error()
			switch {
			case errors.Is(err, hypervisor.ErrFenced):
				res.Kind = "fenced"
			case errors.Is(err, hypervisor.ErrState):
				res.Kind = "state"
			case errors.Is(err, hypervisor.ErrNotFound):
				res.Kind = "notfound"
			}
			q.cfg.Logf("qemu: %s %s failed: %v", r.Op, r.VM.Name, err)
		}
		// The record and the result in one commit: the driver sees both.
		ops := []store.Op{record.Put(qemu.ResKey(cluster, q.node, r.VM.Name), res)}
		if v.recOp != nil {
			ops = append(ops, *v.recOp)
		}
		v.batch, v.recOp = false, nil
		_, _ = q.st.Commit(ctx, nil, ops)
		r.NotifyDriver()
	}
}

// save writes v's record.
func (q *Runner) save(ctx context.Context, cluster string, v *qemuVMRun) error {
	v.rec.Node, v.rec.Name, v.rec.Agent, v.rec.Updated = q.node, v.name, q.agentID, q.e.Now().UTC()
	v.rec.PID = 0
	for _, m := range []*qemu.Machine{v.m, v.dying} {
		if m != nil {
			if done, _ := m.Exited(); !done {
				v.rec.PID = m.PID() // a fenced one keeps its pid until it is gone
			}
		}
	}
	return q.writeRec(ctx, v, record.Put(qemu.NodeKey(cluster, q.node, v.name), v.rec))
}

// writeRec commits op (v's record), or within a request leaves it to the
// commit of the request's result.
func (q *Runner) writeRec(ctx context.Context, v *qemuVMRun, op store.Op) error {
	if v.batch {
		v.recOp = &op
		return nil
	}
	_, err := q.st.Commit(ctx, nil, []store.Op{op})
	return err
}

func (q *Runner) do(ctx context.Context, cluster string, v *qemuVMRun, r qemu.Request, res *qemu.Result, report func(hypervisor.Progress)) error {
	if q.initErr != "" && r.Op != qemu.OpStatus && r.Op != qemu.OpDiscard && r.Op != qemu.OpStop && r.Op != qemu.OpFence {
		return errors.New(q.initErr)
	}
	switch r.Op {
	case qemu.OpStatus:
		if v.rec.Name == "" {
			return fmt.Errorf("VM %q is not known on %s: %w", r.VM.Name, q.node, hypervisor.ErrNotFound)
		}
		q.refreshState(ctx, v)
		rec := v.rec
		res.Status = &rec
		return nil
	case qemu.OpStart:
		if v.m != nil && v.rec.State == hypervisor.Running && v.rec.Token == r.Token {
			if done, _ := v.m.Exited(); !done {
				return q.hotplugDataDisks(ctx, cluster, v) // the ones added since it booted (disks.go)
			}
		}
		if v.rec.State == hypervisor.Paused || v.rec.State == hypervisor.Received || v.rec.State == qemu.Incoming {
			return fmt.Errorf("VM %q on %s is %s (a live migration holds it): resume or discard it first: %w", r.VM.Name, q.node, v.rec.State, hypervisor.ErrState)
		}
		q.stopMachine(ctx, v)
		if err := q.launch(ctx, cluster, v, r, "", nil); err != nil {
			return err
		}
		v.rec.State, v.rec.Token, v.rec.VM, v.rec.Reason = hypervisor.Running, r.Token, r.VM, ""
		v.rec.Boots++
		return q.save(ctx, cluster, v)
	case qemu.OpStop, qemu.OpFence:
		if v.rec.Name == "" {
			return nil
		}
		if r.Op == qemu.OpFence {
			q.fenceMachine(cluster, v)
		} else {
			q.stopMachine(ctx, v)
		}
		v.rec.State = hypervisor.Off
		v.rec.Reason = "stopped"
		if r.Op == qemu.OpFence {
			v.rec.Reason = fmt.Sprintf("fenced: token %d owns the VM now", r.Token)
		} else {
			v.rec.Token = r.Token
		}
		return q.save(ctx, cluster, v)
	case qemu.OpDiscard:
		q.stopMachine(ctx, v)
		v.rec = qemu.NodeVM{}
		return q.writeRec(ctx, v, store.Del(qemu.NodeKey(cluster, q.node, v.name)))
	case qemu.OpIncoming:
		if v.m != nil && (v.rec.State == hypervisor.Running || v.rec.State == hypervisor.Paused) {
			if done, _ := v.m.Exited(); !done {
				return fmt.Errorf("VM %q already runs on %s: %w", r.VM.Name, q.node, hypervisor.ErrState)
			}
		}
		q.stopMachine(ctx, v)
		key, tls, err := q.migrationKeys(ctx, cluster)
		if err != nil {
			return err
		}
		ln, err := qemu.ListenMigration(q.cfg.MigrationAddress, key, qemuMigrationID(cluster, r.VM.Name, r.Token))
		if err != nil {
			return err
		}
		if err := q.launch(ctx, cluster, v, r, "defer", nil); err != nil {
			_ = ln.Close()
			return err
		}
		v.stopAccept = q.acceptMigration(ln, v.m, tls, r)
		v.rec.State, v.rec.Token, v.rec.VM, v.rec.Reason = qemu.Incoming, r.Token, r.VM, ""
		res.Addr, res.Port = q.cfg.MigrationAddress, ln.Port()
		return q.save(ctx, cluster, v)
	case qemu.OpMigrate:
		return q.migrateOut(ctx, cluster, v, r, res, report)
	case qemu.OpResume:
		return q.resume(ctx, cluster, v, r)
	case qemu.OpSave:
		return q.saveState(ctx, cluster, v, r, res, report)
	case qemu.OpRestore:
		return q.restore(ctx, cluster, v, r, report)
	}
	return fmt.Errorf("unknown request %q", r.Op)
}

// refreshState reads QEMU's own run state into the record.
func (q *Runner) refreshState(ctx context.Context, v *qemuVMRun) {
	if v.m == nil {
		if v.rec.State != hypervisor.Off && v.rec.State != hypervisor.Saved && v.rec.State != "" {
			// The record says it runs, but no QEMU of this process runs it.
			v.rec.State, v.rec.PID = hypervisor.Off, 0
			v.rec.Reason = fmt.Sprintf("no QEMU process runs it on %s (agent %s)", q.node, q.agentID)
		}
		return
	}
	exited := func() bool {
		done, err := v.m.Exited()
		if done && v.rec.State != hypervisor.Off && v.rec.State != hypervisor.Saved {
			// It crashed (watch recorded why): nothing runs here now.
			v.rec.State, v.rec.PID, v.rec.Reason = hypervisor.Off, 0, fmt.Sprintf("QEMU exited unexpectedly: %v", err)
		}
		return done
	}
	if exited() {
		return
	}
	st, err := v.m.QMP.Status(ctx)
	if err != nil {
		// A QMP socket that fails is most often a QEMU that is dying: its
		// exit, not the stale record, is the answer.
		if waitExit(ctx, v.m, 2*time.Second) {
			exited()
		}
		return
	}
	switch st {
	case "running":
		v.rec.State = hypervisor.Running
	case "postmigrate", "finish-migrate":
		v.rec.State = hypervisor.Paused
	case "inmigrate":
		v.rec.State = qemu.Incoming
	case "paused", "prelaunch":
		switch v.rec.State {
		case qemu.Incoming:
			v.rec.State = hypervisor.Received
		case hypervisor.Running:
			v.rec.State = hypervisor.Paused
		}
	}
}

// disk opens (or reopens: a fresh read of the BAT) the VM's VHDs (the
// boot disk with its template) and ISO on the volume and publishes them
// as exports (disks.go).
func (q *Runner) disk(ctx context.Context, cluster string, v *qemuVMRun) error {
	vm, err := q.e.GetVM(ctx, cluster, v.name)
	if err != nil {
		return err
	}
	fv, err := q.mount(ctx, vm.Volume)
	if err != nil {
		return err
	}
	if v.volume == "" {
		v.volume = vm.Volume
	} else {
		q.unmount(vm.Volume) // the VM already holds a reference
	}
	if err := q.publishDrives(fv, vm, v); err != nil { // disks.go
		return err
	}
	v.machine = q.machineDrives(vm)
	v.rec.NBD = q.nbd.URL(v.name)
	return nil
}

func (q *Runner) mount(ctx context.Context, volID string) (*kayofs.Volume, error) {
	// A mount can wait for a lease (a previous agent process of this node
	// that was killed holds it until it expires: internal/engine/volume_locks.go): one at a
	// time, outside q.mu, so the agent's heartbeat goes on meanwhile.
	q.mountMu.Lock()
	defer q.mountMu.Unlock()
	q.mu.Lock()
	if vol, ok := q.vols[volID]; ok {
		if err := fencedMount(vol, q.node, volID); err != nil {
			q.mu.Unlock()
			return nil, err
		}
		vol.refs++
		q.mu.Unlock()
		return vol.fv, nil
	}
	q.mu.Unlock()
	v, err := q.e.GetVolume(ctx, volID)
	if err != nil {
		return nil, err
	}
	fd, o, err := q.e.OpenVolumeMount(v) // internal/engine/volume_locks.go
	if err != nil {
		return nil, err
	}
	// Waiting: a killed agent of this node holds its slot's lock until its
	// lease ends (etcd locks, disk leases); none but this node's agent
	// mounts as this name.
	fv, err := q.e.MountWaiting(ctx, fd, v, q.node+MountSuffix, o)
	if err != nil {
		_ = fd.Close()
		return nil, fmt.Errorf("volume %s: mounting it for %s's VM disks: %w (the agent needs a free node slot of its own)", v.DriveLetter, q.node, err)
	}
	q.mu.Lock()
	q.vols[volID] = &qemuVolume{fd: fd, fv: fv, refs: 1}
	q.mu.Unlock()
	return fv, nil
}

func (q *Runner) unmount(volID string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	vol, ok := q.vols[volID]
	if !ok {
		return
	}
	vol.refs--
	if vol.refs <= 0 {
		_ = vol.fv.Unmount()
		_ = vol.fd.Close()
		delete(q.vols, volID)
	}
}

// launch starts v's QEMU; incoming as qemu.Config's (in: the stream of
// "fd").
func (q *Runner) launch(ctx context.Context, cluster string, v *qemuVMRun, r qemu.Request, incoming string, in *os.File) error {
	if err := q.disk(ctx, cluster, v); err != nil {
		return err
	}
	nics, err := q.nics(ctx, cluster, v, r)
	if err != nil {
		q.dropNICs(ctx, v)
		q.dropDisk(v)
		return err
	}
	m, err := qemu.Launch(ctx, q.bin, qemu.Config{Name: v.name, MemoryMB: r.VM.MemoryMB, Processors: r.VM.Processors,
		Guest: q.cfg.Guest, Disk: q.nbd.Disk(v.name), Drives: v.machine, Accel: q.accel, NICs: nics,
		Incoming: incoming, IncomingFile: in, Dir: q.dir})
	if err != nil {
		q.dropNICs(ctx, v)
		q.dropDisk(v)
		return err
	}
	v.m = m
	v.rec.QMP, v.rec.Serial = qemu.QMPPath(q.dir, v.name), qemu.SerialPath(q.dir, v.name)
	go q.watch(cluster, v, m)
	return nil
}

func (q *Runner) dropDisk(v *qemuVMRun) {
	if v.export != nil {
		q.nbd.Remove(v.name)
		v.export = nil
	}
	q.dropDrives(v)
	if v.volume != "" {
		q.unmount(v.volume)
		v.volume = ""
	}
	v.rec.NBD = ""
}

// stopMachine ends v's QEMU and waits until it is gone (a fenced one
// too).
func (q *Runner) stopMachine(ctx context.Context, v *qemuVMRun) {
	if v.stopAccept != nil {
		v.stopAccept()
		v.stopAccept = nil
	}
	if v.m != nil {
		v.m.Kill()
		v.m = nil
	}
	if v.dying != nil {
		v.dying.Signal()
		<-v.dying.Done()
		v.dying = nil
	}
	q.dropDisk(v)
	q.dropNICs(ctx, v)
}

// fenceMachine refuses every later disk write of v's QEMU and freezes it
// (SIGSTOP): it runs no guest code, so the new owner may resume at once.
// It is killed a moment later (or by a stop or discard here, which wait
// for the exit): tearing down a 1 GiB guest takes up to 100 ms of CPU
// that would otherwise delay the target's resume on a busy machine. The
// record keeps the pid until the process is gone.
func (q *Runner) fenceMachine(cluster string, v *qemuVMRun) {
	if v.stopAccept != nil {
		v.stopAccept()
		v.stopAccept = nil
	}
	v.fenceExports() // no write of the old owner lands after this
	if m := v.m; m != nil {
		m.Freeze()
		v.m, v.dying = nil, m
		go q.reap(cluster, v.name, m)
	}
	q.dropDisk(v)
}

// fencedKillDelay: how long a fenced QEMU stays frozen before it is
// killed, if no stop or discard kills it first.
const fencedKillDelay = 500 * time.Millisecond

// reap kills a fenced QEMU after fencedKillDelay and clears the pid in
// its record once it is gone.
func (q *Runner) reap(cluster, name string, m *qemu.Machine) {
	select {
	case <-m.Done():
	case <-time.After(fencedKillDelay):
		m.Signal()
		<-m.Done()
	}
	_ = os.Remove(qemu.QMPPath(q.dir, name))
	// Detached: the reaper outlives the request that fenced the machine.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	key := qemu.NodeKey(cluster, q.node, name)
	_ = record.Retry(ctx, func() error {
		var rec qemu.NodeVM
		rev, err := record.Get(ctx, q.st, key, &rec)
		if err != nil || rec.PID != m.PID() || rec.State != hypervisor.Off {
			return nil // rewritten meanwhile (the worker sees the exit itself)
		}
		rec.PID = 0
		_, err = q.st.Commit(ctx, []store.Cmp{store.At(key, rev)}, []store.Op{record.Put(key, rec)})
		return err
	})
}

// fencedMount refuses to lend the node agent's mount of a volume once it
// fenced itself: the VMs on it are being stopped (volumeNodeFenced, internal/engine/agent_fence.go), and
// when the last lets it go (unmount) the next mount is a fresh one.
func fencedMount(vol *qemuVolume, node, volID string) error {
	if err := vol.fv.Fenced(); err != nil {
		return fmt.Errorf("volume %s: %s's mount of it fenced itself; its VMs there are being stopped, and it is mounted afresh after: %w",
			volID, node, err)
	}
	return nil
}
