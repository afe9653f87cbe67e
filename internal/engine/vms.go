package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// Virtual machines. A VM record at vms/<cluster>/<name> holds the spec,
// the owner node with its fencing token, the status and any operation in
// progress (Pending). Per node, a capacity record at vm-nodes/<cluster>/
// <node> lists the VMs whose memory the node holds (with their
// anti-affinity class): every placement commits its reservation there, in
// the same commit as the VM record and comparing the revision placement
// read, so two VMs planned onto the last free memory cannot both land.

// VM event kinds. Every ownership change is a vm.owner_changed event with
// from, to, token and previous_token, in the commit that changes it.
const (
	EventVMCreated             = "vm.created"
	EventVMUpdated             = "vm.updated"
	EventVMDeleted             = "vm.deleted"
	EventVMStarted             = "vm.started"
	EventVMStopped             = "vm.stopped"
	EventVMFailed              = "vm.failed"
	EventVMOwnerChanged        = "vm.owner_changed"
	EventVMMigrationStarted    = "vm.migration_started"
	EventVMMigrationCompleted  = "vm.migration_completed"
	EventVMMigrationRolledBack = "vm.migration_rolled_back"
)

// nodeVM is one VM's hold on a node's capacity.
type nodeVM struct {
	MemoryMB int64  `json:"memory_mb"`
	Class    string `json:"class,omitempty"`
	Mode     string `json:"mode,omitempty"`
	// Incoming: reserved for a migration in progress (the VM still holds
	// its source node too).
	Incoming bool `json:"incoming,omitempty"`
}

type nodeVMs struct {
	VMs map[string]nodeVM `json:"vms"`
}

// ---- processes holding operations ----

// PendingLease bounds how long an operation's holder on another host is
// trusted; on this host a dead pid is enough.
const PendingLease = 2 * time.Minute

func (e *Engine) newHolder() Holder {
	return Holder{Host: e.rt.host, PID: e.rt.pid, Runtime: e.rt.id, Expires: e.now().UTC().Add(PendingLease)}
}

// abandoned reports whether p's holder is gone: this runtime but not
// running it any more, a dead process on this host, or past its lease
// (another host, or another runtime of this process).
func (e *Engine) abandoned(p *Pending) bool {
	h := p.Holder
	if h.Host == e.rt.host {
		if h.PID == e.rt.pid && (h.Runtime == "" || h.Runtime == e.rt.id) {
			return !e.rt.runs(p.ID)
		}
		if !pidAlive(h.PID) {
			return true
		}
	}
	return e.now().After(h.Expires)
}

// ---- reading ----

// GetVM returns a VM.
func (e *Engine) GetVM(ctx context.Context, cluster, name string) (VM, error) {
	kv, err := e.st.Get(ctx, vmKey(cluster, name))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return VM{}, fmt.Errorf("VM %q: %w", name, err)
	}
	vm, err := vmRecord(cluster, name, kv)
	if err != nil {
		return vm, err
	}
	vkv, err := e.st.Get(ctx, volumeKey(vm.Volume))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return VM{}, fmt.Errorf("VM %q: its volume: %w", name, err)
	}
	if vol, err := e.volumeRecord(vm.Volume, vkv); err == nil {
		vm.atLetter(vol.DriveLetter)
	}
	return vm, nil
}

// getVMAt is GetVM, taking the record from known (a VM read or committed
// earlier in the same operation) instead of decoding it again when it is
// still at known's revision.
func (e *Engine) getVMAt(ctx context.Context, cluster, name string, known *VM) (VM, error) {
	if known == nil || known.Revision == 0 {
		return e.GetVM(ctx, cluster, name)
	}
	kvs, err := e.st.GetMany(ctx, vmKey(cluster, name), volumeKey(known.Volume))
	if err != nil {
		return VM{}, fmt.Errorf("VM %q: %w", name, err)
	}
	var vm VM
	if kvs[0].Exists() && kvs[0].ModRevision == known.Revision {
		vm = *known
	} else if vm, err = vmRecord(cluster, name, kvs[0]); err != nil {
		return vm, err
	}
	vkv := kvs[1]
	if vm.Volume != known.Volume { // never in place (CheckVMChange); read as GetVM does
		if vkv, err = e.st.Get(ctx, volumeKey(vm.Volume)); err != nil && !errors.Is(err, ErrNotFound) {
			return VM{}, fmt.Errorf("VM %q: its volume: %w", name, err)
		}
	}
	if vol, err := e.volumeRecord(vm.Volume, vkv); err == nil {
		vm.atLetter(vol.DriveLetter)
	}
	return vm, nil
}

// vmOnly reads VM cluster/name's record alone, its paths as last
// committed (GetVM also reads its volume for the current drive letter):
// for callers that judge only its owner, token or pending operation.
func (e *Engine) vmOnly(ctx context.Context, cluster, name string) (VM, error) {
	kv, err := e.st.Get(ctx, vmKey(cluster, name))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return VM{}, fmt.Errorf("VM %q: %w", name, err)
	}
	return vmRecord(cluster, name, kv)
}

// atLetter gives v the paths at its volume's drive letter. The letter
// changes in place (UpdateVolume) without touching the VMs on the volume:
// their paths are read at the volume's current letter, and the next
// commit of a VM's record writes them.
func (v *VM) atLetter(letter string) {
	if letter == "" || letter == v.DriveLetter {
		return
	}
	if p, err := PathsFor(letter, v.Name); err == nil {
		v.DriveLetter, v.VHDPath, v.ConfigPath = letter, p.VHD, p.Config
	}
}

// vmRecord decodes the record of VM cluster/name read as kv (missing: an
// error wrapping ErrNotFound).
func vmRecord(cluster, name string, kv store.KV) (VM, error) {
	if !kv.Exists() {
		return VM{}, fmt.Errorf("VM %q of cluster %q does not exist: %w", name, cluster, ErrNotFound)
	}
	var v VM
	if err := decode(kv, &v); err != nil {
		return VM{}, fmt.Errorf("VM %q: %w", name, err)
	}
	v.Revision = kv.ModRevision
	return v, nil
}

// LookupVM finds a VM by its ID, cluster/name.
func (e *Engine) LookupVM(ctx context.Context, id string) (VM, error) {
	cluster, name, ok := strings.Cut(id, "/")
	if !ok || cluster == "" || name == "" {
		return VM{}, &InputError{Attribute: "id", Value: id, Detail: fmt.Sprintf("%q is not a VM ID; allowed: CLUSTER/NAME, e.g. HVCLUSTER/WEB01", id)}
	}
	return e.GetVM(ctx, cluster, name)
}

// ListVMs returns the VMs of cluster (every cluster when ""), by cluster
// and name.
func (e *Engine) ListVMs(ctx context.Context, cluster string) ([]VM, error) {
	prefix := vmsPrefix
	if cluster != "" {
		prefix += cluster + "/"
	}
	vms, revs, err := listJSON[VM](ctx, e.st, prefix)
	if err != nil {
		return nil, err
	}
	vols, _, err := listJSON[Volume](ctx, e.st, volumesPrefix)
	if err != nil {
		return nil, err
	}
	letters := make(map[string]string, len(vols))
	for _, v := range vols {
		letters[v.ID] = v.DriveLetter
	}
	for i := range vms {
		vms[i].Revision = revs[i]
		vms[i].atLetter(letters[vms[i].Volume])
	}
	return vms, nil
}

// ---- transactions on one VM ----

// vmTxn is one read-decide-commit of a VM and the capacity records it
// touches: everything read is compared, everything changed is written.
type vmTxn struct {
	e        *Engine
	ctx      context.Context
	cluster  string
	vm       VM
	exists   bool
	deleted  bool
	nodes    map[string]*nodeVMs
	nodeRevs map[string]int64
	touched  map[string]bool
	cmps     []store.Cmp
	ops      []store.Op
}

func (t *vmTxn) node(n string) (*nodeVMs, error) {
	if r, ok := t.nodes[n]; ok {
		return r, nil
	}
	var r nodeVMs
	rev, err := getJSON(t.ctx, t.e.st, vmNodeKey(t.cluster, n), &r)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if r.VMs == nil {
		r.VMs = map[string]nodeVM{}
	}
	t.nodes[n], t.nodeRevs[n] = &r, rev
	return &r, nil
}

// seed gives the transaction the capacity records placement read,
// including the absence of a node's record: the commit then compares
// what placement saw. (Read afresh instead, a record another VM created
// meanwhile would pass unseen: two "required" VMs on one node.)
func (t *vmTxn) seed(v *placementView) {
	names := sortedKeys(v.recs)
	for _, node := range v.state.Nodes {
		names = append(names, node.Name)
	}
	for _, n := range names {
		if _, ok := t.nodes[n]; ok {
			continue
		}
		r := v.recs[n]
		c := nodeVMs{VMs: make(map[string]nodeVM, len(r.VMs))}
		for k, x := range r.VMs {
			c.VMs[k] = x
		}
		t.nodes[n], t.nodeRevs[n] = &c, v.revs[n]
	}
}

func (t *vmTxn) reserve(n string, s VMSpec, incoming bool) error {
	r, err := t.node(n)
	if err != nil {
		return err
	}
	r.VMs[s.Name] = nodeVM{MemoryMB: s.MemoryMB, Class: s.AntiAffinityClass, Mode: s.AntiAffinityMode, Incoming: incoming}
	t.touched[n] = true
	return nil
}

func (t *vmTxn) release(n, name string) error {
	if n == "" {
		return nil
	}
	r, err := t.node(n)
	if err != nil {
		return err
	}
	if _, ok := r.VMs[name]; ok {
		delete(r.VMs, name)
		t.touched[n] = true
	}
	return nil
}

func (t *vmTxn) event(kind string, detail map[string]string) {
	t.ops = append(t.ops, t.e.eventOp(Event{Kind: kind, Cluster: t.cluster, Subject: t.vm.Name, Detail: detail}))
}

func (t *vmTxn) ownerChanged(from, to string, prevToken int64, reason string, extra map[string]string) {
	d := map[string]string{"from": from, "to": to, "token": fmt.Sprint(t.vm.Token),
		"previous_token": fmt.Sprint(prevToken), "reason": reason}
	for k, v := range extra {
		d[k] = v
	}
	t.event(EventVMOwnerChanged, d)
}

// vmCommit reads VM cluster/name (absent is allowed: t.exists false), runs
// fn, and commits what fn changed, comparing everything it read; a
// conflict starts over from a fresh read.
func (e *Engine) vmCommit(ctx context.Context, cluster, name string, fn func(t *vmTxn) error) (VM, error) {
	return e.vmCommitAt(ctx, cluster, name, nil, fn)
}

// vmCommitAt is vmCommit for a caller holding the VM as it read or
// committed it last (known): while the record is still at known's
// revision it is not decoded again (the same revision of a key is the
// same bytes). t.vm then shares known's pointers and slices: fn may
// replace them, never change what they point to.
func (e *Engine) vmCommitAt(ctx context.Context, cluster, name string, known *VM, fn func(t *vmTxn) error) (VM, error) {
	var out VM
	hv := hvBufferOf(ctx)
	err := e.retry(ctx, func() error {
		t := &vmTxn{e: e, ctx: ctx, cluster: cluster, nodes: map[string]*nodeVMs{}, nodeRevs: map[string]int64{}, touched: map[string]bool{}}
		v, err := e.getVMAt(ctx, cluster, name, known)
		switch {
		case err == nil:
			t.vm, t.exists = v, true
		case errors.Is(err, ErrNotFound):
			t.vm = VM{VMSpec: VMSpec{Cluster: cluster, Name: name}}
		default:
			return err
		}
		if err := fn(t); err != nil {
			if !errors.Is(err, errNoCommit) {
				return err
			}
			// Nothing to change but the operation's simulator writes
			// (vms_hv.go), if any.
			if hvOps, hvSeq := hv.pending(); len(hvOps) > 0 {
				cmp := store.Absent(vmKey(cluster, name))
				if t.exists {
					cmp = store.At(vmKey(cluster, name), v.Revision)
				}
				if _, err := e.st.Commit(ctx, []store.Cmp{cmp}, hvOps); err != nil {
					return err
				}
				hv.committed(hvSeq)
			}
			out = t.vm
			return nil
		}
		hvOps, hvSeq := hv.pending() // the operation's simulator writes (vms_hv.go)
		cmps := slices.Clone(t.cmps)
		if t.exists {
			cmps = append(cmps, store.At(vmKey(cluster, name), v.Revision))
		} else {
			cmps = append(cmps, store.Absent(vmKey(cluster, name)))
		}
		ops := slices.Clone(t.ops)
		if t.deleted {
			ops = append(ops, store.Del(vmKey(cluster, name)))
		} else {
			ops = append(ops, putJSON(vmKey(cluster, name), t.vm))
		}
		for n := range t.touched {
			if rev := t.nodeRevs[n]; rev > 0 {
				cmps = append(cmps, store.At(vmNodeKey(cluster, n), rev))
			} else {
				cmps = append(cmps, store.Absent(vmNodeKey(cluster, n)))
			}
			if len(t.nodes[n].VMs) == 0 {
				ops = append(ops, store.Del(vmNodeKey(cluster, n)))
			} else {
				ops = append(ops, putJSON(vmNodeKey(cluster, n), t.nodes[n]))
			}
		}
		ops = append(ops, hvOps...)
		rev, err := e.st.Commit(ctx, cmps, ops)
		if err != nil {
			return err
		}
		hv.committed(hvSeq)
		t.vm.Revision = rev
		out = t.vm
		return nil
	})
	return out, err
}

// ---- checks of a change ----

func restartChanges(old, s VMSpec) []string {
	var out []string
	if s.MemoryMB != old.MemoryMB {
		out = append(out, "memory_mb")
	}
	if s.ProcessorCount != old.ProcessorCount {
		out = append(out, "processor_count")
	}
	if s.VHD.SizeGiB != old.VHD.SizeGiB {
		out = append(out, "vhd.size_gib")
	}
	if !slices.Equal(s.Adapters, old.Adapters) {
		out = append(out, "network_adapters")
	}
	return append(out, diskRestartChanges(old, s)...) // vms_disks.go
}

// CheckVMChange judges a change of vm to s: storage does not move, a VHD
// neither shrinks nor changes type, and a running VM is only restarted
// for memory, processors, disk growth or adapters with allow_restart.
func CheckVMChange(vm VM, s VMSpec) error {
	if s.Volume != vm.Volume {
		return &InputError{Attribute: "volume_id", Value: s.Volume,
			Detail: fmt.Sprintf("VM %q lives on volume %s (%s); a VM's storage does not move: keep volume_id, or create a new VM", vm.Name, vm.Volume, vm.DriveLetter)}
	}
	if s.VHD.Type != vm.VHD.Type {
		return &InputError{Attribute: "vhd.type", Value: s.VHD.Type,
			Detail: fmt.Sprintf("the VHD of VM %q is %s; a VHD's type cannot change (convert it outside the cluster and create a new VM)", vm.Name, vm.VHD.Type)}
	}
	if s.VHD.SizeGiB < vm.VHD.SizeGiB {
		return &InputError{Attribute: "vhd.size_gib", Value: fmt.Sprint(s.VHD.SizeGiB),
			Detail: fmt.Sprintf("the VHD of VM %q is %d GiB; a VHD grows, never shrinks: give at least %d", vm.Name, vm.VHD.SizeGiB, vm.VHD.SizeGiB)}
	}
	if err := checkDiskChange(vm, s); err != nil { // vms_disks.go
		return err
	}
	if vm.Status == VMRunning && s.State == VMRunning && !s.AllowRestart {
		if ch := restartChanges(vm.VMSpec, s); len(ch) > 0 {
			return &InputError{Attribute: ch[0], Value: "",
				Detail: fmt.Sprintf("VM %q is running; changing %s needs it off: set state = \"off\" first, or allow_restart = true "+
					"to let apply shut it down, change it and start it again", vm.Name, strings.Join(ch, ", "))}
		}
	}
	return nil
}

// ---- the hypervisor ----

// Hypervisor returns the driver of cluster's hypervisor: the QEMU driver
// (qemu_driver.go) or the embedded simulator, counted when the engine
// has Metrics (metrics.go). It fails when the cluster cannot be read.
func (e *Engine) Hypervisor(ctx context.Context, cluster string) (hypervisor.Driver, error) {
	d, err := e.hypervisorFor(ctx, cluster)
	if err != nil {
		return nil, err
	}
	if d != nil {
		return e.counted(d), nil
	}
	return e.counted(&simDriver{e: e, cluster: cluster}), nil
}

// Simulator returns the embedded simulator of cluster over the database,
// to read its records (tests and kayoctl inspect it); its calls that act
// are the node agents' (sim_driver.go).
func (e *Engine) Simulator(cluster string) *hypervisor.Simulator {
	return hypervisor.NewSimulator(hvBackend{e.st}, cluster)
}

// ---- create ----

// CreateVM places a new VM, reserves its memory on the chosen node in the
// same commit as its record (the owner record, token 1), writes its VHD
// and configuration file on the shared volume and starts it when its
// state is running. A creation that fails midway is rolled back; one
// whose process died is rolled back by the next call.
func (e *Engine) CreateVM(ctx context.Context, s VMSpec) (VM, error) {
	ctx = withHVBuffer(ctx) // simulator writes ride on the VM's commits (vms_hv.go)
	if err := CheckVMSpec(s); err != nil {
		return VM{}, err
	}
	s = NormalizeVMSpec(s)
	if err := e.settleAbandoned(ctx, s.Cluster, s.Name); err != nil {
		return VM{}, err
	}
	c, err := e.clusterHead(ctx, s.Cluster)
	if errors.Is(err, ErrNotFound) {
		return VM{}, &InputError{Attribute: "cluster_id", Value: s.Cluster, Detail: err.Error()}
	}
	if err != nil {
		return VM{}, err
	}
	vol, err := e.vmVolume(ctx, s)
	if err != nil {
		return VM{}, err
	}
	paths, err := PathsFor(vol.DriveLetter, s.Name)
	if err != nil {
		return VM{}, err
	}
	fileCmps, err := e.checkVMFiles(ctx, s, vol, nil) // vms_disks.go
	if err != nil {
		return VM{}, err
	}
	p := &Pending{ID: randomHex(8), Op: opCreate, Phase: PhasePrepare, Holder: e.newHolder(), StartedAt: e.now().UTC()}
	defer e.rt.running(p.ID)()
	// The request of the VM's files (with, on the simulator, a running
	// VM's start: converge then finds it running) rides on the intent's
	// commit: one commit less per creation. A crash after it leaves the
	// request to its executor and the creation to the next call, which
	// rolls it back (the removal of the files replaces the request), as
	// a crash after a commit of the request alone did.
	var files *pendingWork
	var start *simCallArgs
	defer func() {
		if files != nil {
			files.close()
		}
	}()
	vm, err := e.vmCommit(ctx, s.Cluster, s.Name, func(t *vmTxn) error {
		if t.exists {
			return fmt.Errorf("VM %q already exists in cluster %q (import it: terraform import kayo_virtual_machine.NAME %s/%s): %w",
				s.Name, s.Cluster, s.Cluster, s.Name, ErrExists)
		}
		v, err := e.placementView(ctx, c)
		if err != nil {
			return err
		}
		if !v.quorum.Status.HasQuorum {
			return &QuorumLostError{Cluster: c.Name, Status: v.quorum.Status, Action: "creating VM " + s.Name}
		}
		d, err := decide(v, s, nil)
		if err != nil {
			return err
		}
		// On etcd the node's agent writes the files: refused before
		// anything is recorded when it is down (nodework.go).
		if err := e.workReady(ctx, d.Node); err != nil {
			return fmt.Errorf("creating VM %q on %s: %w", s.Name, d.Node, err)
		}
		addrs, err := t.switchRefs(c, s, nil, nil)
		if err != nil {
			return err
		}
		t.seed(v)
		t.cmps = append(t.cmps, v.guard...)
		t.cmps = append(t.cmps, v.hostCmp(d.Node))
		t.cmps = append(t.cmps, fileCmps...)
		t.vm = VM{VMSpec: s, Node: d.Node, Token: 1, Status: VMOff, DriveLetter: vol.DriveLetter,
			VHDPath: paths.VHD, ConfigPath: paths.Config, Pending: p, CreatedAt: e.now().UTC(), AdapterAddresses: addrs}
		if err := t.reserve(d.Node, s, false); err != nil {
			return err
		}
		t.event(EventVMCreated, map[string]string{"node": d.Node, "memory_mb": fmt.Sprint(s.MemoryMB), "vhd": paths.VHD})
		t.ownerChanged("", d.Node, 0, "create", nil)
		if files != nil { // an earlier attempt's
			files.close()
			files = nil
		}
		start = nil
		if c.Hypervisor == HypervisorSimulator && t.vm.State == VMRunning {
			start = simRider(ctx, t.vm.Cluster, simStart, t.vm)
		}
		w, err := e.newVMWork(ctx, d.Node, workVMFiles, t.vm, vmFilesArgs{VM: t.vm, Fresh: true, Start: start})
		if err != nil {
			return err
		}
		files = w
		t.ops = append(t.ops, w.ops...)
		return nil
	})
	if err != nil {
		return VM{}, err
	}
	res, err := files.await(ctx, vm.Revision)
	if err := filesResult(ctx, vm, start, res, err); err != nil {
		return VM{}, e.undoCreate(ctx, vm, err)
	}
	out, err := e.converge(ctx, vm, p.ID)
	if err != nil {
		return VM{}, e.undoCreate(ctx, vm, err)
	}
	return out, nil
}

func (e *Engine) undoCreate(ctx context.Context, vm VM, cause error) error {
	if err := e.deleteVM(ctx, vm); err != nil {
		return fmt.Errorf("%w (and rolling the creation back failed: %v; the next apply retries)", cause, err)
	}
	return cause
}

func (e *Engine) vmVolume(ctx context.Context, s VMSpec) (Volume, error) {
	vol, err := e.GetVolume(ctx, s.Volume)
	if errors.Is(err, ErrNotFound) {
		return Volume{}, &InputError{Attribute: "volume_id", Value: s.Volume, Detail: err.Error() + "; give the id of a kayo_shared_volume of cluster " + s.Cluster}
	}
	if err != nil {
		return Volume{}, err
	}
	if vol.Cluster != s.Cluster {
		return Volume{}, &InputError{Attribute: "volume_id", Value: s.Volume,
			Detail: fmt.Sprintf("volume %s (%s) belongs to cluster %q, not %q", vol.DriveLetter, vol.ID, vol.Cluster, s.Cluster)}
	}
	return vol, nil
}

// converge makes the VM's run state its desired state on its owner and
// commits the status, clearing the pending operation pendingID (if any).
func (e *Engine) converge(ctx context.Context, vm VM, pendingID string) (VM, error) {
	drv, err := e.Hypervisor(ctx, vm.Cluster)
	if err != nil {
		return vm, err
	}
	tok := hypervisor.Token(vm.Token)
	status, reason := vm.State, ""
	if vm.State == VMRunning {
		st, err := drv.Status(ctx, vm.Node, vm.Name)
		switch {
		case err == nil && st.State == hypervisor.Running && st.Token == tok:
			if p := vm.Pending; pendingID != "" && p != nil && p.Prior != nil && dataDisksAdded(*p.Prior, vm.VMSpec) {
				// Data disks added in place (vms_disks.go): Start on the
				// running VM attaches the ones it lacks (hot-plug; a re-run
				// finds them attached).
				if err := drv.Start(ctx, vm.Node, vm.hvVM(), tok); err != nil {
					return vm, fmt.Errorf("attaching the new data disks of VM %q on %s: %w", vm.Name, vm.Node, err)
				}
			}
		case err == nil && (st.State == hypervisor.Paused || st.State == hypervisor.Received):
			err = drv.Resume(ctx, vm.Node, vm.hvVM(), tok)
			if err != nil {
				return vm, err
			}
		case err == nil || errors.Is(err, hypervisor.ErrNotFound):
			if err := drv.Start(ctx, vm.Node, vm.hvVM(), tok); err != nil {
				return vm, fmt.Errorf("starting VM %q on %s: %w", vm.Name, vm.Node, err)
			}
		default:
			return vm, err
		}
	} else if err := drv.Stop(ctx, vm.Node, vm.Name, tok); err != nil {
		return vm, fmt.Errorf("stopping VM %q on %s: %w", vm.Name, vm.Node, err)
	}
	// fn only replaces t.vm's fields (vmCommitAt).
	return e.vmCommitAt(ctx, vm.Cluster, vm.Name, &vm, func(t *vmTxn) error {
		if !t.exists {
			return fmt.Errorf("VM %q vanished while it was being changed: %w", vm.Name, ErrNotFound)
		}
		if t.vm.Token != vm.Token {
			return fmt.Errorf("VM %q changed owner while this process changed it: %w", vm.Name, hypervisor.ErrFenced)
		}
		if pendingID != "" && (t.vm.Pending == nil || t.vm.Pending.ID != pendingID) {
			return fmt.Errorf("VM %q: another process took over its pending operation: %w", vm.Name, ErrBusy)
		}
		was := t.vm.Status
		t.vm.Pending = nil
		if was == status && t.vm.StatusReason == reason && pendingID == "" {
			return errNoCommit
		}
		t.vm.Status, t.vm.StatusReason = status, reason
		if was != status {
			kind := EventVMStarted
			if status == VMOff {
				kind = EventVMStopped
			}
			t.event(kind, map[string]string{"node": t.vm.Node, "token": fmt.Sprint(t.vm.Token)})
		}
		return nil
	})
}

// ---- delete ----

// DeleteVM stops a VM, removes its files from the volume and its record
// and reservation. A missing VM is no error.
func (e *Engine) DeleteVM(ctx context.Context, cluster, name string) error {
	ctx = withHVBuffer(ctx) // simulator writes ride on the VM's commits (vms_hv.go)
	vm, err := e.GetVM(ctx, cluster, name)
	if err == nil && vm.Pending != nil {
		// Settled first when abandoned (settleAbandoned reads it again),
		// then read afresh; a VM without one is read once.
		if err := e.settleAbandoned(ctx, cluster, name); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		vm, err = e.GetVM(ctx, cluster, name)
	}
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if vm.Pending != nil {
		return busyError(vm)
	}
	if err := e.RequireQuorum(ctx, cluster, "deleting VM "+name); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return e.deleteVM(ctx, vm)
}

func (e *Engine) deleteVM(ctx context.Context, vm VM) error {
	drv, err := e.Hypervisor(ctx, vm.Cluster)
	if err != nil {
		return err
	}
	nodes := []string{vm.Node}
	if p := vm.Pending; p != nil {
		nodes = append(nodes, p.From, p.To)
	}
	// On the simulator the owner's discard rides on its removal of the
	// files (sim_driver.go).
	var discard *simCallArgs
	if simOf(drv) != nil {
		discard = simRider(ctx, vm.Cluster, simDiscard, vm)
	}
	for _, n := range nodes {
		if n == "" || (discard != nil && n == vm.Node) {
			continue
		}
		if err := drv.Discard(ctx, n, vm.Name); err != nil {
			return err
		}
	}
	if err := e.removeFiles(ctx, vm, discard); err != nil {
		return err
	}
	// fn only reads t.vm and bumps its token (vmCommitAt).
	_, err = e.vmCommitAt(ctx, vm.Cluster, vm.Name, &vm, func(t *vmTxn) error {
		if !t.exists {
			return errNoCommit
		}
		t.deleted = true
		swept := map[string]bool{}
		for _, n := range nodes {
			if err := t.release(n, vm.Name); err != nil {
				return err
			}
			// The last node-work result of the VM there (nodework.go),
			// once per node: a pending operation names the owner again,
			// or no node ("" before placement).
			if n != "" && !swept[n] {
				swept[n] = true
				t.ops = append(t.ops, store.Del(nodeWorkResKey(n, vmWorkObject(vm.Cluster, vm.Name))))
			}
		}
		if p := t.vm.Pending; p != nil && p.Op == opMigrate && p.Type == MigrationLive {
			t.ops = append(t.ops, store.Del(vmMigLockKey(vm.Cluster, p.From, p.To)))
		}
		prev := t.vm.Token
		t.vm.Token++
		t.event(EventVMDeleted, map[string]string{"node": t.vm.Node})
		t.ownerChanged(t.vm.Node, "", prev, "delete", nil)
		return nil
	})
	return err
}

func busyError(vm VM) error {
	p := vm.Pending
	return fmt.Errorf("VM %q: process %s is running its %s (phase %s, since %s); retry when it is done: %w",
		vm.Name, p.Holder, p.Op, p.Phase, p.StartedAt.Format(time.RFC3339), ErrBusy)
}
