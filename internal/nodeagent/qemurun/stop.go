package qemurun

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor/qemu"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/record"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// The end of a node agent's QEMU processes, as the cluster database
// records it: they run only while their agent runs (the agent serves their
// disks, and they die with it), so an agent that stops says which VMs it
// stopped and why, and one that starts after a crash says which VMs
// ended with its predecessor. The VM's status follows at once (off or
// failed, with status_reason), so `kayoctl vm list` and the next plan see
// it, and apply starts the VM again.

// shutdownRecordTimeout bounds the records an agent writes as it stops.
const shutdownRecordTimeout = 10 * time.Second

// recordShutdown waits for the VM workers (their QEMU processes are
// killed, so their requests end) and records each VM whose QEMU this
// agent stopped: the VM reads off, with the reason.
func (q *Runner) recordShutdown() {
	// Detached: the agent's own context is cancelled when this runs.
	ctx, cancel := context.WithTimeout(context.Background(), shutdownRecordTimeout)
	defer cancel()
	done := make(chan struct{})
	go func() { q.workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		q.cfg.Logf("qemu: VM workers still busy after %s; recording the stopped VMs anyway", shutdownRecordTimeout)
	}
	// Drivers see at once that nothing runs here any more.
	var b qemu.AgentBeat
	if rev, err := record.Get(ctx, q.st, qemu.AgentKey(q.node), &b); err == nil && b.Agent == q.agentID {
		b.Time = q.e.Now().UTC()
		b.Stopped = b.Time
		_, err = q.st.Commit(ctx, []store.Cmp{store.At(qemu.AgentKey(q.node), rev)}, []store.Op{record.Put(qemu.AgentKey(q.node), b)})
		if err != nil {
			q.cfg.Logf("qemu: recording the agent's stop: %v", err)
		}
	}
	q.mu.Lock()
	cluster := q.cluster
	names := make([]string, 0, len(q.vms))
	for n := range q.vms {
		names = append(names, n)
	}
	q.mu.Unlock()
	if cluster == "" {
		return
	}
	reason := fmt.Sprintf("stopped by the node agent of %s (%s, pid %d), which shut down; apply starts it again",
		q.node, q.agentID, os.Getpid())
	for _, name := range names {
		stopped, err := q.recordGone(ctx, cluster, name, engine.VMOff, reason)
		switch {
		case err != nil:
			q.cfg.Logf("qemu: VM %s: recording its stop: %v", name, err)
		case stopped:
			q.cfg.Logf("qemu: VM %s stopped: %s", name, reason)
		}
	}
}

// adoptRecords marks the VMs a previous agent process of this node left
// running (their QEMU processes ended with it) as failed, with the
// reason, before this agent accepts requests.
func (q *Runner) adoptRecords(ctx context.Context, cluster string) {
	recs, _, err := record.List[qemu.NodeVM](ctx, q.st, qemu.NodePrefix(cluster)+q.node+"/")
	if err != nil {
		q.cfg.Logf("qemu: reading the VMs a previous agent ran: %v", err)
		return
	}
	for _, r := range recs {
		if r.State == hypervisor.Off || r.State == hypervisor.Saved {
			continue
		}
		reason := fmt.Sprintf("its QEMU process (pid %d) on %s ended with node agent %s, which stopped without recording it; "+
			"apply starts it again", r.PID, q.node, r.Agent)
		if stopped, err := q.recordGone(ctx, cluster, r.Name, engine.StatusFailed, reason); err != nil {
			q.cfg.Logf("qemu: VM %s: %v", r.Name, err)
		} else if stopped {
			q.cfg.Logf("qemu: VM %s: %s", r.Name, reason)
		}
	}
}

// recordGone commits that VM name's QEMU on this node is gone: the node's
// record off with reason, an engine.EventVMQEMUStopped naming the VM and, when
// the VM still runs here by its own record (this node, the same token, no
// operation in flight), its status (off or failed) and status_reason. It
// reports false when the node's record showed nothing running.
func (q *Runner) recordGone(ctx context.Context, cluster, name, status, reason string) (bool, error) {
	key := qemu.NodeKey(cluster, q.node, name)
	// gone returns the commit of the node's record and the event, and the
	// token the record ran the VM with; ok false: nothing ran here.
	gone := func() (cmps []store.Cmp, ops []store.Op, tok hypervisor.Token, ok bool, err error) {
		var rec qemu.NodeVM
		rev, err := record.Get(ctx, q.st, key, &rec)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, 0, false, nil
		}
		if err != nil || rec.State == hypervisor.Off || rec.State == hypervisor.Saved {
			return nil, nil, 0, false, err
		}
		pid, state := rec.PID, rec.State
		tok = rec.Token
		rec.State, rec.PID, rec.Reason, rec.Updated = hypervisor.Off, 0, reason, q.e.Now().UTC()
		ev := engine.Event{Kind: engine.EventVMQEMUStopped, Cluster: cluster, Subject: name, Detail: map[string]string{"node": q.node,
			"pid": fmt.Sprint(pid), "was": string(state), "agent": q.agentID, "reason": reason}}
		return []store.Cmp{store.At(key, rev)}, []store.Op{record.Put(key, rec), q.e.EventOp(ev)}, tok, true, nil
	}
	seen := false
	withVM, err := q.e.CommitVMEnded(ctx, cluster, name, engine.VMEnded{Node: q.node, Status: status, Reason: reason,
		Record: func() ([]store.Cmp, []store.Op, hypervisor.Token, bool, error) {
			cmps, ops, tok, ok, err := gone()
			seen = ok
			return cmps, ops, tok, ok, err
		}})
	if err != nil || withVM || !seen {
		return withVM, err
	}
	err = record.Retry(ctx, func() error {
		cmps, ops, _, ok, err := gone()
		if err != nil || !ok {
			return err
		}
		_, err = q.st.Commit(ctx, cmps, ops)
		return err
	})
	return err == nil, err
}
