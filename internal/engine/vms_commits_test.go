package engine

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// commitLog records the keys each commit of a store writes.
type commitLog struct {
	store.Store
	mu      sync.Mutex
	commits [][]string
}

func (s *commitLog) Commit(ctx context.Context, cmps []store.Cmp, ops []store.Op) (int64, error) {
	keys := make([]string, 0, len(ops))
	for _, op := range ops {
		keys = append(keys, op.Key)
	}
	s.mu.Lock()
	s.commits = append(s.commits, keys)
	s.mu.Unlock()
	return s.Store.Commit(ctx, cmps, ops)
}

// take returns the commits recorded since the last take.
func (s *commitLog) take() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.commits
	s.commits = nil
	return c
}

// storeEnv is an engine on a bbolt store that wrap wraps (to count or
// log its calls), with the seed's two hosts, cluster and a volume.
func storeEnv(t *testing.T, wrap func(store.Store) store.Store) (*Engine, Volume) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	b, err := store.OpenBolt(filepath.Join(dir, DatabaseFile), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := openT(Config{Store: wrap(b), DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	mustHosts(t, e, seedSpec("Y-21-2k8x64", 21), seedSpec("Y-22-2k8x64", 22))
	if _, err := e.CreateCluster(ctx, seedCluster("HVCLUSTER", "Y-21-2k8x64", "Y-22-2k8x64")); err != nil {
		t.Fatal(err)
	}
	vol, err := e.CreateVolume(ctx, VolumeSpec{Cluster: "HVCLUSTER", LUN: "lun0", SizeGiB: 2, DriveLetter: "O", BlockSize: 4096, NodeSlots: 4})
	if err != nil {
		t.Fatal(err)
	}
	return e, vol
}

// TestVMFileWorkReportRidesOnVMCommit: the volume report of a VM's file
// work (its node's view of the volume's space) rides on the VM
// operation's next commit, also when the node's executor does the work
// through the node-work protocol (WorkRequest.ReportBack): creating and
// deleting a VM commits no report of its own, and the report is there
// after each.
func TestVMFileWorkReportRidesOnVMCommit(t *testing.T) {
	ctx := context.Background()
	st := &commitLog{}
	e, vol := storeEnv(t, func(b store.Store) store.Store { st.Store = b; return st })
	// onlyReports names the commits that write nothing but volume reports.
	onlyReports := func(commits [][]string) []string {
		var out []string
		for _, keys := range commits {
			alone := len(keys) > 0
			for _, k := range keys {
				alone = alone && strings.HasPrefix(k, volumeReportsPrefix)
			}
			if alone {
				out = append(out, strings.Join(keys, ","))
			}
		}
		return out
	}
	report := func(node string) VolumeReport {
		t.Helper()
		var r VolumeReport
		if _, err := getJSON(ctx, e.st, volumeReportKey(vol.ID, node), &r); err != nil {
			t.Fatalf("report of %s: %v", node, err)
		}
		return r
	}
	st.take()
	vm, err := e.CreateVM(ctx, vmSpec(vol, "WEB01", 1024))
	if err != nil {
		t.Fatal(err)
	}
	if c := onlyReports(st.take()); len(c) != 0 {
		t.Errorf("creating the VM committed its volume report on its own: %v", c)
	}
	created := report(vm.Node)
	if created.SlotState != "mounted" || created.UsedBytes == 0 {
		t.Fatalf("report after the creation: %+v", created)
	}
	if err := e.DeleteVM(ctx, "HVCLUSTER", "WEB01"); err != nil {
		t.Fatal(err)
	}
	if c := onlyReports(st.take()); len(c) != 0 {
		t.Errorf("deleting the VM committed its volume report on its own: %v", c)
	}
	if r := report(vm.Node); !r.ReportedAt.After(created.ReportedAt) && r.UsedBytes == created.UsedBytes {
		t.Fatalf("report after the deletion is the creation's: %+v", r)
	}
}

// TestVMOwnershipChecksReadOneRecord: the fence check of a VM's file work
// and the look for an abandoned operation before each VM operation judge
// only the VM's owner, token and pending operation: one read of its
// record, not also of its volume (GetVM's drive letter).
func TestVMOwnershipChecksReadOneRecord(t *testing.T) {
	ctx := context.Background()
	st := &countingStore{}
	e, vol := storeEnv(t, func(b store.Store) store.Store { st.Store = b; return st })
	vm, err := e.CreateVM(ctx, vmSpec(vol, "WEB01", 1024))
	if err != nil {
		t.Fatal(err)
	}
	st.reads()
	if err := e.fenceCheck(ctx, vm); err != nil {
		t.Fatal(err)
	}
	if r := st.reads(); r != [3]int64{1, 0, 0} {
		t.Errorf("fence check: %v reads (get, getmany, list), want one get", r)
	}
	stale := vm
	stale.Token--
	if err := e.fenceCheck(ctx, stale); err == nil {
		t.Error("fence check passed a stale token")
	}
	st.reads()
	if err := e.settleAbandoned(ctx, "HVCLUSTER", "WEB01"); err != nil {
		t.Fatal(err)
	}
	if r := st.reads(); r != [3]int64{1, 0, 0} {
		t.Errorf("abandoned-operation check: %v reads (get, getmany, list), want one get", r)
	}
}

// listLog counts the Lists of a store under a prefix.
type listLog struct {
	store.Store
	prefix string
	n      atomic.Int64
}

func (s *listLog) List(ctx context.Context, prefix string) ([]store.KV, int64, error) {
	if strings.HasPrefix(prefix, s.prefix) {
		s.n.Add(1)
	}
	return s.Store.List(ctx, prefix)
}

// TestWorkExecutorScansOncePerRequest: a node's executor reads its
// requests (one List) when poked for a request, not again when the
// request ends unless another of the same object waited for it.
func TestWorkExecutorScansOncePerRequest(t *testing.T) {
	ctx := context.Background()
	st := &listLog{prefix: nodeWorkPrefix}
	e, vol := storeEnv(t, func(b store.Store) store.Store { st.Store = b; return st })
	s := vmSpec(vol, "WEB01", 1024)
	s.OwnerNode = "Y-21-2k8x64"
	if _, err := e.CreateVM(ctx, s); err != nil { // starts the node's executor
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	st.n.Store(0)
	s.Name = "WEB02"
	if _, err := e.CreateVM(ctx, s); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // a scan after the request ended would come now
	if n := st.n.Load(); n != 1 {
		t.Fatalf("the executor read its requests %d times for one request, want 1", n)
	}
}

// TestWorkExecutorStartsQueuedRequest: a request for an object whose
// earlier request still runs starts as soon as that one ends (the scan the
// end of the running one makes for it).
func TestWorkExecutorStartsQueuedRequest(t *testing.T) {
	ctx := context.Background()
	e := newDisk(t)
	vol, err := e.CreateVolume(ctx, VolumeSpec{Cluster: "HVCLUSTER", LUN: "lun0", SizeGiB: 2, DriveLetter: "O", BlockSize: 4096, NodeSlots: 4})
	if err != nil {
		t.Fatal(err)
	}
	s := vmSpec(vol, "WEB01", 1024)
	s.OwnerNode = "Y-21-2k8x64"
	vm, err := e.CreateVM(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var blocked atomic.Bool
	e.workHook = func(_ string, _ func(), op, phase string) {
		if op == workVMFiles && phase == "before" && blocked.CompareAndSwap(false, true) {
			<-release // the first request runs until the second is queued
		}
	}
	first := make(chan error, 1)
	go func() { first <- e.writeFiles(ctx, vm, false) }()
	for !blocked.Load() {
		time.Sleep(time.Millisecond)
	}
	second := make(chan error, 1)
	go func() { second <- e.writeFiles(ctx, vm, false) }()
	// The second request is committed and its poke scanned while the
	// first runs.
	time.Sleep(200 * time.Millisecond)
	close(release)
	select {
	case err := <-second:
		if err != nil {
			t.Fatalf("the queued request: %v", err)
		}
	case <-time.After(700 * time.Millisecond):
		t.Fatal("the queued request did not start within 700ms of the running one's end")
	}
	select {
	case <-first: // its work was done (its result or superseded: either)
	case <-time.After(5 * time.Second):
		t.Fatal("the superseded request's caller still waits")
	}
}

// TestVMCreationCommitsTwice: a creation commits its intent with the
// request of the VM's files riding on it, then its completion (with the
// in-process executor's result riding on that): two commits, the first
// holding both the VM's record and the request.
func TestVMCreationCommitsTwice(t *testing.T) {
	ctx := context.Background()
	st := &commitLog{}
	e, vol := storeEnv(t, func(b store.Store) store.Store { st.Store = b; return st })
	st.take()
	vm, err := e.CreateVM(ctx, vmSpec(vol, "WEB01", 1024))
	if err != nil {
		t.Fatal(err)
	}
	commits := st.take()
	if len(commits) != 2 {
		t.Fatalf("a creation committed %d times, want 2 (intent with the files' request, completion): %v", len(commits), commits)
	}
	req := nodeWorkReqKey(vm.Node, vmWorkObject(vm.Cluster, vm.Name))
	if !slices.Contains(commits[0], vmKey(vm.Cluster, vm.Name)) || !slices.Contains(commits[0], req) {
		t.Errorf("the intent's commit wrote %v, want the VM's record and the request %s", commits[0], req)
	}
	if _, err := e.st.Get(ctx, req); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the files' request is still recorded after the creation: %v", err)
	}
}
