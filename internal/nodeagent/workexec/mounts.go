package workexec

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
)

// A node agent's long-lived mounts. While it runs, the work executor of
// a node agent (`kayoctl agent --node NAME`, not an engine's in-process
// one) holds a Kayo FS mount of every volume its node mounts: the node's
// slot, its journal and its cluster lock or lease
// (internal/engine/volume_locks.go) stay held for the agent's life, and
// the node's work (VM files, volume changes) runs on that mount: it is an
// entry of the engine runtime's mount cache pinned so that it never goes
// idle (engine.PinMount). On a clean shutdown the agent detaches every
// mount (the slot stays the node's); a restarted agent mounts again,
// replaying the journal a killed one left once its lock has expired.
//
// Another process that must mount the node asks the agent to let go
// first (a volume.release request, internal/engine/volume_release.go):
// the agent detaches and does not mount that volume again for the hold
// the request names.

// agentMountRefresh is how often an agent brings its mounts in line with
// the volumes its node mounts (also on every poke).
const agentMountRefresh = 2 * time.Second

// agentMounts are the mounts one node agent's executor holds.
type agentMounts struct {
	x    *Executor
	wake chan struct{}
	mu   sync.Mutex
	// held: volume ID → the pinned cache entry.
	held map[string]func()
	// hold: volume ID → until when it is not mounted again (a release).
	hold map[string]time.Time
	// releases: volume ID → how many releases came, so that a mount that
	// took longer than a release's hold still sees it came meanwhile.
	releases map[string]int
}

func newAgentMounts(x *Executor) *agentMounts {
	return &agentMounts{x: x, wake: make(chan struct{}, 1), held: map[string]func(){},
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
	want := map[string]engine.Volume{}
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
	for _, id := range slices.Sorted(maps.Keys(want)) {
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
		unpin, err := e.PinMount(ctx, v, node)
		if err != nil {
			errs = append(errs, fmt.Errorf("volume %s: (%s) as %s: %w", v.DriveLetter, v.ID, node, err))
			continue
		}
		m.mu.Lock()
		// A release came while it mounted (its hold may have run out
		// meanwhile): it waits for this mount to detach.
		released := m.releases[id] != releases
		if !released {
			m.held[id] = unpin
		}
		m.mu.Unlock()
		if released {
			unpin()
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
	unpin := m.held[id]
	delete(m.held, id)
	m.mu.Unlock()
	if unpin != nil {
		unpin()
	}
	m.x.e.DetachMounts(ctx, id, m.x.cfg.Node)
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
