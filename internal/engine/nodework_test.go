package engine

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/vhd"
)

// workLog records the node-work an engine's executors run (workHook).
type workLog struct {
	mu  sync.Mutex
	ran []string // "<executor id> <op> <phase>"
}

func (l *workLog) hook(id string, _ func(), op, phase string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ran = append(l.ran, id+" "+op+" "+phase)
}

// count returns how many times op reached phase on executors whose ID
// starts with by.
func (l *workLog) count(by, op, phase string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.ran {
		if strings.HasPrefix(r, by) && strings.HasSuffix(r, " "+op+" "+phase) {
			n++
		}
	}
	return n
}

// workEnv is an engine on the embedded database (real clock) in dir with
// the seed's two nodes, their cluster and volume O:.
func workEnv(t *testing.T, dir string) (*Engine, Volume) {
	t.Helper()
	ctx := context.Background()
	e := openWorkEngine(t, dir)
	mustHosts(t, e, seedSpec(y21, 21), seedSpec(y22, 22))
	if _, err := e.CreateCluster(ctx, seedCluster("HVCLUSTER", y21, y22)); err != nil {
		t.Fatal(err)
	}
	vol, err := e.CreateVolume(ctx, VolumeSpec{Cluster: "HVCLUSTER", LUN: "lun0", SizeGiB: 50, Label: "VMSTORE",
		DriveLetter: "O", BlockSize: 4096, NodeSlots: 16})
	if err != nil {
		t.Fatal(err)
	}
	return e, vol
}

func openWorkEngine(t *testing.T, dir string) *Engine {
	t.Helper()
	e, err := openT(Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// startWorkAgent runs a node agent's work executor for node on engine e
// until the returned func is called (it waits for the executor).
func startWorkAgent(t *testing.T, e *Engine, node string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = runWorkAgent(ctx, e, node, t.Logf) }()
	// Up once its heartbeat is recorded.
	deadline := time.Now().Add(10 * time.Second)
	for e.workAgentUp(ctx, node) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the work executor of %s wrote no heartbeat", node)
		}
		time.Sleep(5 * time.Millisecond)
	}
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// noWorkRecords fails when node-work requests are left, or results other
// than the last one of each VM in vms (deleted VMs leave none).
func noWorkRecords(t *testing.T, e *Engine, vms ...VM) {
	t.Helper()
	kvs, _, err := e.st.List(context.Background(), nodeWorkPrefix)
	if err != nil {
		t.Fatal(err)
	}
	keep := map[string]bool{}
	for _, vm := range vms {
		keep[nodeWorkResKey(vm.Node, vmWorkObject(vm.Cluster, vm.Name))] = true
	}
	for _, kv := range kvs {
		if !keep[kv.Key] {
			t.Errorf("node-work record left: %s = %s", kv.Key, kv.Value)
		}
	}
}

// vmFilesGood checks the VM's VHD opens with its size and its
// configuration file is there.
func vmFilesGood(t *testing.T, e *Engine, vm VM) {
	t.Helper()
	p, err := PathsFor(vm.DriveLetter, vm.Name)
	if err != nil {
		t.Fatal(err)
	}
	err = e.WithVolume(context.Background(), vm.Volume, vm.Node, func(fv *kayofs.Volume) error {
		f, err := fv.Open(p.VolVHD)
		if err != nil {
			return err
		}
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		d, err := vhd.Open(vmFile{f}, fi.Size)
		if err != nil {
			return err
		}
		if want, _ := vhd.RoundSize(vm.VHD.SizeGiB << 30); d.Size() != want {
			t.Errorf("VHD size %d, want %d", d.Size(), want)
		}
		_, err = fv.Open(p.VolConfig)
		return err
	})
	if err != nil {
		t.Fatalf("VM %s files: %v", vm.Name, err)
	}
}

// With the embedded database and no agent, the engine's own executor
// writes and removes the VM's files through the protocol's records, and
// leaves none behind.
func TestNodeWorkInProcessExecutor(t *testing.T) {
	ctx := context.Background()
	e, vol := workEnv(t, t.TempDir())
	var log workLog
	e.workHook = log.hook
	vm, err := e.CreateVM(ctx, vmSpec(vol, "WEB01", 1024))
	if err != nil {
		t.Fatal(err)
	}
	if n := log.count("local:", workVMFiles, "after"); n != 1 {
		t.Fatalf("the in-process executor wrote the files %d times, want 1 (ran: %v)", n, log.ran)
	}
	vmFilesGood(t, e, vm)
	noWorkRecords(t, e, vm)
	if err := e.DeleteVM(ctx, vm.Cluster, vm.Name); err != nil {
		t.Fatal(err)
	}
	if n := log.count("local:", workVMRemoveFiles, "after"); n != 1 {
		t.Fatalf("the in-process executor removed the files %d times, want 1 (ran: %v)", n, log.ran)
	}
	noWorkRecords(t, e)
	volumeClean(t, vol)
}

// A node whose agent runs gets its work done by the agent, not by the
// calling engine; once the agent stopped, the caller's engine does it.
func TestNodeWorkAgentServes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e, vol := workEnv(t, dir)
	agent := openWorkEngine(t, dir) // the agent's process
	var callerLog, agentLog workLog
	e.workHook, agent.workHook = callerLog.hook, agentLog.hook
	stop := startWorkAgent(t, agent, y21)
	s := vmSpec(vol, "WEB01", 1024)
	s.OwnerNode = y21
	vm, err := e.CreateVM(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if n := agentLog.count(WorkForAgent, workVMFiles, "after"); n != 1 || len(callerLog.ran) != 0 {
		t.Fatalf("agent wrote the files %d times (want 1); the caller ran %v (want nothing)", n, callerLog.ran)
	}
	vmFilesGood(t, e, vm)
	stop()
	if err := e.workAgentUp(ctx, y21); !errors.Is(err, ErrAgentDown) || !strings.Contains(err.Error(), "shut down") {
		t.Fatalf("after the agent stopped: %v, want ErrAgentDown saying it shut down", err)
	}
	if err := e.DeleteVM(ctx, vm.Cluster, vm.Name); err != nil {
		t.Fatal(err)
	}
	if n := callerLog.count("local:", workVMRemoveFiles, "after"); n != 1 {
		t.Fatalf("with the agent stopped the caller removed the files %d times, want 1 (ran: %v)", n, callerLog.ran)
	}
	noWorkRecords(t, e)
	volumeClean(t, vol)
}

// On etcd (remoteDB) a node without a live agent is a clear error naming
// the node and the command that starts its agent, before anything is
// recorded; with the agent started the same call succeeds.
func TestNodeWorkRemoteDatabaseNeedsAgent(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e, vol := workEnv(t, dir)
	e.remoteDB = true // as on etcd: no in-process executor stands in
	s := vmSpec(vol, "WEB01", 1024)
	s.OwnerNode = y21
	_, err := e.CreateVM(ctx, s)
	if !errors.Is(err, ErrAgentDown) || !strings.Contains(err.Error(), "kayoctl agent --node "+y21) {
		t.Fatalf("CreateVM with no agent on %s: %v, want ErrAgentDown naming `kayoctl agent --node %s`", y21, err, y21)
	}
	if _, err := e.GetVM(ctx, "HVCLUSTER", "WEB01"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a VM was recorded although its node's agent is down: %v", err)
	}
	err = e.WithVolume(ctx, vol.ID, y21, func(fv *kayofs.Volume) error {
		ents, err := fv.ReadDir("")
		if err == nil && len(ents) != 0 {
			t.Errorf("the volume holds %d entries after the refused creation", len(ents))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	noWorkRecords(t, e)
	agent := openWorkEngine(t, dir)
	var agentLog workLog
	agent.workHook = agentLog.hook
	startWorkAgent(t, agent, y21)
	vm, err := e.CreateVM(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if n := agentLog.count(WorkForAgent, workVMFiles, "after"); n != 1 {
		t.Fatalf("the agent wrote the files %d times, want 1", n)
	}
	vmFilesGood(t, e, vm)
	noWorkRecords(t, e, vm)
	// The agent removes the files and keeps its mount a moment: the
	// volume's deletion right after waits for it rather than fail.
	if err := e.DeleteVM(ctx, vm.Cluster, vm.Name); err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteVolume(ctx, vol.ID, false); err != nil {
		t.Fatalf("deleting the volume right after the agent removed the VM's files: %v", err)
	}
}

// The in-process executor cancelled (as a crash) before or after doing
// the work, before recording its result: the waiting call starts a new
// executor, which runs the request again, and converges; the volume
// checks clean.
func TestNodeWorkInProcessExecutorCancelled(t *testing.T) {
	for _, phase := range []string{"before", "after"} {
		for _, op := range []string{workVMFiles, workVMRemoveFiles} {
			t.Run(op+"/"+phase, func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				e, vol := workEnv(t, t.TempDir())
				var log workLog
				var once sync.Once
				e.workHook = func(id string, stop func(), o, ph string) {
					log.hook(id, stop, o, ph)
					if o == op && ph == phase {
						once.Do(stop)
					}
				}
				vm, err := e.CreateVM(ctx, vmSpec(vol, "WEB01", 1024))
				if err != nil {
					t.Fatal(err)
				}
				if op == workVMFiles {
					if n := log.count("local:", op, "before"); n != 2 {
						t.Fatalf("%s ran %d times, want 2 (once cancelled, once again): %v", op, n, log.ran)
					}
					vmFilesGood(t, e, vm)
				}
				if err := e.DeleteVM(ctx, vm.Cluster, vm.Name); err != nil {
					t.Fatal(err)
				}
				if n := log.count("local:", op, "before"); n != 2 {
					t.Fatalf("%s ran %d times, want 2 (once cancelled, once again): %v", op, n, log.ran)
				}
				noWorkRecords(t, e)
				volumeClean(t, vol)
			})
		}
	}
}

// A request whose result is recorded is queued as done: an executor
// that restarts does not run it again (its intent and completion are both
// there; internal/nodeagent/workexec's TestDoneRequestNotRerun). Only the
// requests addressed to the executor are its queue.
func TestNodeWorkDoneRequestNotRerun(t *testing.T) {
	ctx := context.Background()
	e, vol := workEnv(t, t.TempDir())
	vm, err := e.CreateVM(ctx, vmSpec(vol, "WEB01", 1024))
	if err != nil {
		t.Fatal(err)
	}
	_, id, err := e.localExecutor(vm.Node)
	if err != nil {
		t.Fatal(err)
	}
	obj := vmWorkObject(vm.Cluster, vm.Name)
	req := WorkRequest{ID: "done-before", Op: workVMRemoveFiles, Object: obj, For: "another executor", Created: time.Now()}
	if _, err := e.st.Commit(ctx, nil, []store.Op{putJSON(nodeWorkReqKey(vm.Node, obj), req),
		putJSON(nodeWorkResKey(vm.Node, obj), workResult{ID: req.ID, Done: true})}); err != nil {
		t.Fatal(err)
	}
	q, err := e.WorkQueue(ctx, vm.Node, id, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 0 {
		t.Fatalf("another executor's request is in this one's queue: %+v", q)
	}
	q, err = e.WorkQueue(ctx, vm.Node, "another executor", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 1 || q[0].Req.ID != req.ID || !q[0].Done || q[0].Err != nil || q[0].Rev == 0 {
		t.Fatalf("queue %+v, want the request done", q)
	}
	vmFilesGood(t, e, vm) // the VM's files were not removed
}

// Growing a volume is done by the first of its nodes (by name) whose
// agent is up: with the database as on etcd and no agent, a clear error
// naming a node and nothing grown; with Y-22's agent alone, Y-22's agent
// grows it; on the embedded database without agents, the engine's
// in-process executor of the first node.
func TestNodeWorkVolumeGrow(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e, vol := workEnv(t, dir)
	var callerLog, agentLog workLog
	e.workHook = callerLog.hook
	grow := func(gib int64) error {
		v, err := e.GetVolume(ctx, vol.ID)
		if err != nil {
			t.Fatal(err)
		}
		s := v.VolumeSpec
		s.SizeGiB = gib
		_, err = e.UpdateVolume(ctx, vol.ID, s)
		return err
	}
	size := func() int64 {
		var n int64
		if err := e.WithVolume(ctx, vol.ID, y21, func(fv *kayofs.Volume) error {
			st, err := fv.Stats()
			n = st.TotalBytes
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	e.remoteDB = true
	if err := grow(60); !errors.Is(err, ErrAgentDown) || !strings.Contains(err.Error(), "kayoctl agent --node "+y21) {
		t.Fatalf("grow with no agent on etcd: %v, want ErrAgentDown naming `kayoctl agent --node %s`", err, y21)
	}
	if got := size(); got != 50<<30 {
		t.Fatalf("volume size %d after a refused grow, want %d", got, int64(50<<30))
	}
	agent := openWorkEngine(t, dir)
	agent.workHook = agentLog.hook
	stop := startWorkAgent(t, agent, y22)
	if err := grow(60); err != nil {
		t.Fatal(err)
	}
	if agentLog.count(WorkForAgent, workVolumeChange, "after") != 1 || len(callerLog.ran) != 0 {
		t.Fatalf("Y-22's agent ran %v, the caller %v; want the agent's volume.change alone", agentLog.ran, callerLog.ran)
	}
	if got := size(); got != 60<<30 {
		t.Fatalf("volume size %d after the grow, want %d", got, int64(60<<30))
	}
	stop()
	e.remoteDB = false
	if err := grow(70); err != nil {
		t.Fatal(err)
	}
	if callerLog.count("local:", workVolumeChange, "after") != 1 {
		t.Fatalf("the in-process executor did not grow the volume: %v", callerLog.ran)
	}
	if got := size(); got != 70<<30 {
		t.Fatalf("volume size %d after the grow, want %d", got, int64(70<<30))
	}
	// The last result of each node's volume change stays (swept later);
	// no request is left.
	if kvs, _, err := e.st.List(ctx, nodeWorkPrefix); err != nil || len(kvs) != 2 || strings.Contains(kvs[0].Key+kvs[1].Key, "/req/") {
		t.Errorf("node-work records after the grows: %v (%v), want the 2 nodes' last results", kvs, err)
	}
	volumeClean(t, vol)
}

// A sweep of the queue deletes results whose request is gone once they
// are older than workResultKeep; a recent one stays for its caller, and
// so does an old one whose request is there.
func TestNodeWorkResultsSwept(t *testing.T) {
	ctx := context.Background()
	e, _ := workEnv(t, t.TempDir())
	old, recent := nodeWorkResKey(y21, "vm/HVCLUSTER/OLD"), nodeWorkResKey(y21, "vm/HVCLUSTER/NEW")
	asked := nodeWorkResKey(y21, "vm/HVCLUSTER/ASKED")
	if _, err := e.st.Commit(ctx, nil, []store.Op{
		putJSON(old, workResult{ID: "a", Done: true, Updated: time.Now().Add(-2 * workResultKeep)}),
		putJSON(recent, workResult{ID: "b", Done: true, Updated: time.Now()}),
		putJSON(asked, workResult{ID: "c", Done: true, Updated: time.Now().Add(-2 * workResultKeep)}),
		putJSON(nodeWorkReqKey(y21, "vm/HVCLUSTER/ASKED"), WorkRequest{ID: "d", Op: workVMFiles, Object: "vm/HVCLUSTER/ASKED", For: "nobody"}),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.WorkQueue(ctx, y21, "nobody", false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Get(ctx, old); err != nil {
		t.Fatalf("a queue read without a sweep swept: %v", err)
	}
	if _, err := e.WorkQueue(ctx, y21, "nobody", true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Get(ctx, old); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the old result was not swept: %v", err)
	}
	for _, k := range []string{recent, asked} {
		if _, err := e.st.Get(ctx, k); err != nil {
			t.Fatalf("%s went too: %v", k, err)
		}
	}
}
