package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// A node agent's long-lived mounts. While it runs, the work executor of
// a node agent (`kayoctl agent --node NAME`, not an engine's in-process
// one) holds a Kayo FS mount of every volume its node mounts: the node's
// slot, its journal and its cluster lock or lease (volume_locks.go) stay
// held for the agent's life, and the node's work (VM files, volume
// changes) runs on that mount: it is an entry of the runtime's mount
// cache (volume_mounts.go) pinned so that it never goes idle. On a clean
// shutdown the agent detaches every mount (the slot stays the node's); a
// restarted agent mounts again, replaying the journal a killed one left
// once its lock has expired.
//
// Another process that must mount the node (the control plane deleting
// the volume, unmounting a node that left, a quick migration's saved
// state, kayoctl volume cp) asks the agent to let go first
// (workVolumeRelease): the agent detaches and does not mount that volume
// again for the hold the request names.

// agentMountRefresh is how often an agent brings its mounts in line with
// the volumes its node mounts (also on every poke).
const agentMountRefresh = 2 * time.Second

// Holds of a release: a deletion or unmount keeps the agent off the
// volume for the lock timeout (its record is gone by then), a loan for a
// moment (the borrower's mount detaches once idle; the agent's mount
// waits for it).
const (
	releaseHoldDelete = DefaultLockTimeout
	releaseHoldLend   = time.Second
)

type volumeReleaseArgs struct {
	Volume string        `json:"volume"`
	Hold   time.Duration `json:"hold"`
}

// agentMounts are the mounts one node agent's executor holds.
type agentMounts struct {
	x    *WorkExecutor
	wake chan struct{}
	mu   sync.Mutex
	// held: volume ID → the pinned cache entry.
	held map[string]*sharedMount
	// hold: volume ID → until when it is not mounted again (a release).
	hold map[string]time.Time
	// releases: volume ID → how many releases came, so that a mount that
	// took longer than a release's hold still sees it came meanwhile.
	releases map[string]int
}

func newAgentMounts(x *WorkExecutor) *agentMounts {
	return &agentMounts{x: x, wake: make(chan struct{}, 1), held: map[string]*sharedMount{},
		hold: map[string]time.Time{}, releases: map[string]int{}}
}

func (m *agentMounts) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// run keeps the mounts until ctx ends, then detaches them all.
func (m *agentMounts) run(ctx context.Context) {
	// Its own mounts: one that finds the node held by another process (a
	// killed agent's, until its lock expires) waits; it must not ask this
	// agent to lend (lendMount), which would wait for this very mount.
	ctx = withExecutor(ctx, m.x.cfg.Node)
	t := time.NewTicker(agentMountRefresh)
	defer t.Stop()
	for ctx.Err() == nil {
		if err := m.refresh(ctx); err != nil && ctx.Err() == nil {
			m.x.cfg.Logf("mounts: %v", err)
		}
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-m.wake:
		}
	}
	m.mu.Lock()
	ids := make([]string, 0, len(m.held))
	for id := range m.held {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	for _, id := range ids {
		m.drop(context.WithoutCancel(ctx), id)
	}
}

// refresh mounts every volume of the node not held yet (nor on hold) and
// lets go of those the node no longer mounts.
func (m *agentMounts) refresh(ctx context.Context) error {
	e, node := m.x.e, m.x.cfg.Node
	vs, err := e.ListVolumes(ctx, "")
	if err != nil {
		return err
	}
	want := map[string]Volume{}
	for _, v := range vs {
		if _, ok := v.Mounts[node]; ok {
			want[v.ID] = v
		}
	}
	m.mu.Lock()
	var gone []string
	for id := range m.held {
		if _, ok := want[id]; !ok {
			gone = append(gone, id)
		}
	}
	m.mu.Unlock()
	for _, id := range gone {
		m.drop(ctx, id)
	}
	var errs []error
	for _, id := range sortedKeys(want) {
		v := want[id]
		m.mu.Lock()
		_, held := m.held[id]
		until, onHold := m.hold[id]
		if onHold && time.Now().After(until) {
			delete(m.hold, id)
			onHold = false
		}
		releases := m.releases[id]
		m.mu.Unlock()
		if held || onHold {
			continue
		}
		sm, err := e.rt.mounts.acquire(ctx, e, v, node)
		if err != nil {
			errs = append(errs, fmt.Errorf("volume %s: (%s) as %s: %w", v.DriveLetter, v.ID, node, err))
			continue
		}
		m.mu.Lock()
		// A release came while it mounted (its hold may have run out
		// meanwhile): it waits for this mount to detach.
		released := m.releases[id] != releases
		if !released {
			m.held[id] = sm
			e.rt.mounts.setPinned(id, node, true)
		}
		m.mu.Unlock()
		if released {
			e.rt.mounts.release(sm)
			continue
		}
		m.x.cfg.Logf("mounts: volume %s: (%s) mounted as %s for the agent's life", v.DriveLetter, v.ID, node)
	}
	return errors.Join(errs...)
}

// drop lets go of the mount of volume id and waits until the runtime's
// mount of it is detached (work that uses it finishes first).
func (m *agentMounts) drop(ctx context.Context, id string) {
	m.mu.Lock()
	sm := m.held[id]
	delete(m.held, id)
	m.mu.Unlock()
	e := m.x.e
	if sm != nil {
		e.rt.mounts.setPinned(id, m.x.cfg.Node, false)
		e.rt.mounts.release(sm)
	}
	e.rt.mounts.detachVolume(ctx, id, m.x.cfg.Node)
}

// release lets go of volume id's mount and keeps off it for hold.
func (m *agentMounts) release(ctx context.Context, id string, hold time.Duration) {
	m.mu.Lock()
	m.hold[id] = time.Now().Add(hold)
	m.releases[id]++
	m.mu.Unlock()
	m.x.cfg.Logf("mounts: volume %s: released for %s", id, hold)
	m.drop(ctx, id)
	m.poke() // its next refresh counts the hold from now
}

// releaseHere carries out a release request: an agent's executor lets go
// of its long-lived mount; an in-process one detaches the runtime's idle
// mounts of the volume.
func (x *WorkExecutor) releaseHere(ctx context.Context, a volumeReleaseArgs) error {
	if x.mounts != nil {
		x.mounts.release(ctx, a.Volume, a.Hold)
		return nil
	}
	x.e.rt.mounts.detachVolume(ctx, a.Volume, x.cfg.Node)
	return nil
}

// releaseAgentMounts asks the agent of each node of nodes whose agent is
// up to let go of its mount of volume id and stay off it for hold, and
// waits for them. A node without an agent holds no mount.
func (e *Engine) releaseAgentMounts(ctx context.Context, id string, nodes []string, hold time.Duration) error {
	args, err := json.Marshal(volumeReleaseArgs{Volume: id, Hold: hold})
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if e.rt.mounts.pinned(id, n) {
			continue // this runtime's agent: the caller shares its mount
		}
		if !e.remoteDB {
			if until, ok := e.work.noAgent.Load(n); ok && time.Now().Before(until.(time.Time)) {
				continue // known without an agent a moment ago (workTarget)
			}
		}
		if err := e.workAgentUp(ctx, n); errors.Is(err, ErrAgentDown) {
			continue
		} else if err != nil {
			return err
		}
		if err := e.releaseAgentMount(ctx, n, id, args); err != nil {
			return fmt.Errorf("asking node %s's agent to release its mount of volume %s: %w", n, id, err)
		}
	}
	return nil
}

// releaseAgentMount asks node's agent to release its mount of volume id.
// Callers releasing one volume at once (two files deleted in one apply)
// share the request's object: one that is superseded asks again, which
// is harmless (a release is idempotent).
func (e *Engine) releaseAgentMount(ctx context.Context, node, id string, args []byte) error {
	obj := volumeMountWorkObject(id)
	for {
		res, err := e.nodeWork(ctx, node, workRequest{Op: workVolumeRelease, Object: obj, Args: args})
		if errors.Is(err, ErrBusy) {
			select {
			case <-ctx.Done():
				return err
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		if err != nil {
			return err
		}
		// Read: its result has served. Deleted only if still ours: another
		// caller's result may have replaced it.
		var cur workResult
		if rev, gerr := getJSON(ctx, e.st, nodeWorkResKey(node, obj), &cur); gerr == nil && cur.ID == res.ID {
			_, _ = e.st.Commit(ctx, []store.Cmp{store.At(nodeWorkResKey(node, obj), rev)}, []store.Op{store.Del(nodeWorkResKey(node, obj))})
		}
		return nil
	}
}

// executorFor marks ctx as the work of node's executor: its mounts of
// node are its own (or its agent's), never borrowed from an agent.
type executorFor struct{}

func withExecutor(ctx context.Context, node string) context.Context {
	return context.WithValue(ctx, executorFor{}, node)
}

func executingFor(ctx context.Context, node string) bool {
	n, _ := ctx.Value(executorFor{}).(string)
	return n == node
}

// lendMount has node's agent, when another process runs it, let go of
// its mount of volume id a moment so that this process can mount node
// (WithVolume outside the node's executor).
func (e *Engine) lendMount(ctx context.Context, id, node string) error {
	if executingFor(ctx, node) {
		return nil
	}
	return e.releaseAgentMounts(ctx, id, []string{node}, releaseHoldLend)
}
