package qemurun

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor/qemu"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/record"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// Supervision in the QEMU executor of a node agent: QEMU processes that
// exit unasked, and VMs whose ownership token moved on.

// watch reports a QEMU process that exits without being asked to: the
// node's record goes off, and a VM that should run here with this token
// is marked failed with the reason (its status, and so the next plan,
// says so; re-apply starts it again).
func (q *Runner) watch(cluster string, v *qemuVMRun, m *qemu.Machine) {
	<-m.Done()
	if m.WasKilled() {
		return
	}
	_, exit := m.Exited()
	tail, _ := os.ReadFile(qemu.LogPath(q.dir, v.name))
	reason := fmt.Sprintf("QEMU (pid %d) exited unexpectedly: %v; log: %s", m.PID(), exit, trimLines(string(tail), 3))
	q.cfg.Logf("qemu: VM %s: %s", v.name, reason)
	// The worker owns v's fields; it sees the exit on its next request.
	// Detached: the watcher belongs to the QEMU process, not to a request.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	key := qemu.NodeKey(cluster, q.node, v.name)
	// exited returns the commit of the record (off) and the event, or
	// false when the record is no longer this process's.
	exited := func() ([]store.Cmp, []store.Op, hypervisor.Token, bool) {
		var rec qemu.NodeVM
		rev, err := record.Get(ctx, q.st, key, &rec)
		if err != nil || rec.PID != m.PID() {
			return nil, nil, 0, false
		}
		tok := rec.Token
		rec.State, rec.Reason, rec.PID, rec.Updated = hypervisor.Off, reason, 0, q.e.Now().UTC()
		return []store.Cmp{store.At(key, rev)}, []store.Op{record.Put(key, rec), q.e.EventOp(engine.Event{Kind: engine.EventVMQEMUExited, Cluster: cluster,
			Subject: v.name, Detail: map[string]string{"node": q.node, "pid": fmt.Sprint(m.PID()), "reason": reason}})}, tok, true
	}
	failed, err := q.e.CommitVMEnded(ctx, cluster, v.name, engine.VMEnded{Node: q.node, Status: engine.StatusFailed,
		Reason: fmt.Sprintf("its QEMU process (pid %d) on %s exited unexpectedly (%v); apply starts it again", m.PID(), q.node, exit),
		Record: func() ([]store.Cmp, []store.Op, hypervisor.Token, bool, error) {
			cmps, ops, tok, ok := exited()
			return cmps, ops, tok, ok, nil
		}})
	if err == nil && failed {
		return
	}
	_ = record.Retry(ctx, func() error {
		cmps, ops, _, ok := exited()
		if !ok {
			return nil
		}
		_, err := q.st.Commit(ctx, cmps, ops)
		return err
	})
}

// sweepFences kills (and fences the exports of) VMs this node runs with a
// token older than the VM's newest: their ownership moved on.
func (q *Runner) sweepFences(ctx context.Context) {
	q.mu.Lock()
	cluster := q.cluster
	vms := make([]*qemuVMRun, 0, len(q.vms))
	for _, v := range q.vms {
		vms = append(vms, v)
	}
	q.mu.Unlock()
	if cluster == "" || len(vms) == 0 {
		return
	}
	kvs, _, err := q.st.List(ctx, qemu.FencePrefix(cluster))
	if err != nil {
		return
	}
	fences := map[string]hypervisor.Token{}
	for _, kv := range kvs {
		var t hypervisor.Token
		if json.Unmarshal(kv.Value, &t) == nil {
			fences[filepath.Base(kv.Key)] = t
		}
	}
	for _, v := range vms {
		f, ok := fences[v.name]
		if !ok || q.seenFence[v.name] == f {
			continue
		}
		q.seenFence[v.name] = f
		// The worker judges it (it owns v): an internal request, no result.
		select {
		case v.reqs <- qemu.Request{Op: qemu.OpSweep, VM: hypervisor.VM{Name: v.name}, Token: f}:
		default:
		}
	}
}

// sweep fences v when it runs (or holds, paused) the VM with a token older
// than tok; a migration target waiting to resume is left alone.
func (q *Runner) sweep(ctx context.Context, cluster string, v *qemuVMRun, tok hypervisor.Token) {
	if v.m == nil || v.rec.Token >= tok || (v.rec.State != hypervisor.Running && v.rec.State != hypervisor.Paused) {
		return
	}
	q.cfg.Logf("qemu: %s: token %d is stale (newest %d): fenced, QEMU stopped", v.name, v.rec.Token, tok)
	q.fenceMachine(cluster, v)
	v.rec.State, v.rec.Reason = hypervisor.Off, fmt.Sprintf("fenced: token %d owns the VM now", tok)
	_ = q.save(ctx, cluster, v)
}

// trimLines keeps the last n lines of s.
func trimLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " | ")
}
