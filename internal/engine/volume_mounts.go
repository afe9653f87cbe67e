package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// Mount cache. Mounting a Kayo FS volume as a node takes the volume's
// slot-table lock over all slots, replays dead journals and syncs, and
// detaching syncs again; a VM operation needs the volume for a few
// milliseconds. So a process keeps one mount per (volume, node) and lends
// it to every operation that needs that node's view: concurrent ones share
// it (kayofs serialises goroutines of one mount itself) and back-to-back
// ones reuse it. A mount nobody used for DefaultMountIdle is detached (the node's
// slot stays claimed, as after WithVolume always), so another process — a
// terraform run, kayoctl, an agent — can mount that node again within
// milliseconds. Whoever finds the node mounted by another live process
// (kayofs.ErrMounted) retries with backoff until the lock timeout, and
// then says which node of which volume stayed busy.
//
// A process that dies holding a cached mount leaves the node's slot as a
// crash does: its journal (clean, since every transaction committed)
// is replayed by the next mount. The cache belongs to the process's
// Runtime; Runtime.ReleaseMounts detaches every idle mount at once (the
// provider calls it on exit), releaseVolumeMounts a volume's (DeleteVolume
// before unmounting).

type mountKey struct{ volume, device, node string }

// sharedMount is one cached mount. users, idle, gen and gone are guarded
// by mountCache.mu; fd, fv and err are set before ready is closed.
type sharedMount struct {
	key   mountKey
	users int
	// gen grows on every release, so an idle timer of an earlier release
	// does nothing.
	gen   uint64
	idle  *time.Timer
	ready chan struct{}
	err   error
	// gone is closed once a detaching mount is detached; nil while live.
	gone chan struct{}
	// draining: a release waits for it to detach (detachVolume); it is
	// not handed out again.
	draining bool
	fd       *kayofs.FileDevice
	fv       *kayofs.Volume
}

type mountCache struct {
	mu sync.Mutex
	m  map[mountKey]*sharedMount
	// idle is how long an unused mount stays attached.
	idle time.Duration
	// pins: volume ID + "/" + node → held by this runtime's node agent
	// for its life (internal/nodeagent/workexec/mounts.go).
	pins map[string]bool
	// made counts the mounts made (Runtime.MountsMade).
	made atomic.Int64
}

func (c *mountCache) setPinned(id, node string, on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pins == nil {
		c.pins = map[string]bool{}
	}
	if on {
		c.pins[id+"/"+node] = true
	} else {
		delete(c.pins, id+"/"+node)
	}
}

// pinned reports whether this runtime's node agent holds node's mount of
// volume id.
func (c *mountCache) pinned(id, node string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pins[id+"/"+node]
}

// detachVolume detaches the runtime's mounts of volume id as node,
// waiting for those in use to go idle, until none is left or ctx ends.
// Other nodes' mounts of the volume (one runtime may run several nodes'
// agents, and each holds its own for its life) are not waited for.
func (c *mountCache) detachVolume(ctx context.Context, id, node string) {
	// Only the mounts there now, which are not handed out again: one
	// reused or made meanwhile (the agent's own, once a loan's hold ran
	// out) would keep the wait going for good.
	c.mu.Lock()
	waitFor := map[*sharedMount]bool{}
	for k, sm := range c.m {
		if k.volume == id && k.node == node {
			sm.draining = true
			waitFor[sm] = true
		}
	}
	c.mu.Unlock()
	for {
		c.releaseMounts(id)
		c.mu.Lock()
		left := false
		for k, sm := range c.m {
			if k.volume == id && k.node == node && waitFor[sm] {
				left = true
				break
			}
		}
		c.mu.Unlock()
		if !left {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// withMount runs fn on volume v mounted as node, from the cache.
func (e *Engine) withMount(ctx context.Context, v Volume, node string, fn func(*kayofs.Volume) error) error {
	sm, err := e.rt.mounts.acquire(ctx, e, v, node)
	if err != nil {
		return err
	}
	defer e.rt.mounts.release(sm)
	return fn(sm.fv)
}

// serialVolume serialises the runtime's VM file work on one volume. The
// volume's namespace lock serialises metadata changes across nodes
// anyway, and a mount that takes it after another node's mount had it
// re-reads the directory table: one VM's few changes at a time keeps them
// on one mount together (one re-read, not one per change) and spares the
// lock a convoy of waiting mounts.
func (e *Engine) serialVolume(id string, fn func() error) error {
	mu, _ := e.rt.volumeWorkLocks.LoadOrStore(id, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	return fn()
}

func (c *mountCache) acquire(ctx context.Context, e *Engine, v Volume, node string) (*sharedMount, error) {
	key := mountKey{volume: v.ID, device: v.Device, node: node}
	for {
		c.mu.Lock()
		sm := c.m[key]
		switch {
		case sm == nil:
			sm = &sharedMount{key: key, users: 1, ready: make(chan struct{})}
			c.m[key] = sm
			c.mu.Unlock()
			fd, fv, err := e.mountRetrying(ctx, v, node)
			c.mu.Lock()
			sm.fd, sm.fv, sm.err = fd, fv, err
			if err != nil {
				delete(c.m, key)
			} else {
				c.made.Add(1)
			}
			close(sm.ready)
			c.mu.Unlock()
			if err != nil {
				return nil, err
			}
			return sm, nil
		case sm.gone != nil:
			gone := sm.gone
			c.mu.Unlock()
			select {
			case <-gone:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		case sm.draining:
			c.mu.Unlock()
			select {
			case <-time.After(5 * time.Millisecond): // until it is detached
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		sm.users++
		if sm.idle != nil {
			sm.idle.Stop()
			sm.idle = nil
		}
		c.mu.Unlock()
		select {
		case <-sm.ready:
		case <-ctx.Done():
			c.release(sm)
			return nil, ctx.Err()
		}
		if sm.err != nil {
			if ctx.Err() == nil && (errors.Is(sm.err, context.Canceled) || errors.Is(sm.err, context.DeadlineExceeded)) {
				continue // the caller that was mounting gave up; this one has not
			}
			return nil, sm.err
		}
		return sm, nil
	}
}

func (c *mountCache) release(sm *sharedMount) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sm.users--
	if sm.users > 0 || sm.err != nil || sm.fv == nil {
		return
	}
	sm.gen++
	gen := sm.gen
	sm.idle = time.AfterFunc(c.idle, func() { c.expire(sm, gen) })
}

// expire detaches sm if nobody used it since the release that set gen.
func (c *mountCache) expire(sm *sharedMount, gen uint64) {
	c.mu.Lock()
	if sm.users > 0 || sm.gen != gen || sm.gone != nil || c.m[sm.key] != sm {
		c.mu.Unlock()
		return
	}
	sm.gone = make(chan struct{})
	sm.idle = nil
	c.mu.Unlock()
	c.detach(sm)
}

func (c *mountCache) detach(sm *sharedMount) {
	// A failed detach leaves the slot as a crash would: the node's next
	// mount replays its (committed) journal.
	_ = detach(sm.fv)
	_ = sm.fd.Close()
	c.mu.Lock()
	delete(c.m, sm.key)
	close(sm.gone)
	c.mu.Unlock()
}

// releaseMounts detaches at once every idle cached mount of volume id
// (every volume when ""), and waits for mounts being detached. Mounts in
// use stay.
func (c *mountCache) releaseMounts(id string) {
	c.mu.Lock()
	var detaching []*sharedMount
	var wait []chan struct{}
	for k, sm := range c.m {
		if id != "" && k.volume != id {
			continue
		}
		switch {
		case sm.gone != nil:
			wait = append(wait, sm.gone)
		case sm.users == 0 && sm.fv != nil:
			if sm.idle != nil {
				sm.idle.Stop()
				sm.idle = nil
			}
			sm.gone = make(chan struct{})
			detaching = append(detaching, sm)
		}
	}
	c.mu.Unlock()
	for _, sm := range detaching {
		c.detach(sm)
	}
	for _, ch := range wait {
		<-ch
	}
}

// releaseVolumeMounts detaches the runtime's idle cached mounts of volume
// id: code that mounts nodes itself (to unmount them, or to delete the
// volume) calls it first, since a mount this process holds refuses a
// second one of the same node (kayofs.ErrMounted).
func (e *Engine) releaseVolumeMounts(id string) { e.rt.mounts.releaseMounts(id) }

// mountRetrying mounts v as node, waiting while another process holds
// that node's mount (kayofs.ErrMounted), with backoff, up to the lock
// timeout.
func (e *Engine) mountRetrying(ctx context.Context, v Volume, node string) (*kayofs.FileDevice, *kayofs.Volume, error) {
	fd, o, err := e.OpenVolumeMount(v) // its lock manager (volume_locks.go)
	if err != nil {
		return nil, nil, err
	}
	limit, onWait := e.waitPolicy()
	start := time.Now()
	var notified time.Time
	// The caller asked the node's agent to lend its mount just before
	// (WithVolume); an agent that mounted again once its loan's hold ran
	// out, before this mount got in, is asked again.
	lent := start
	poll := time.Millisecond
	for {
		fv, err := kayofs.Mount(fd, node, o)
		if err == nil {
			return fd, fv, nil
		}
		if errors.Is(err, kayofs.ErrMounted) && time.Since(lent) >= releaseHoldLend {
			_ = e.lendMount(ctx, v.ID, node) // failing, the wait goes on to the lock timeout
			lent = time.Now()
		}
		waited := time.Since(start)
		if !errors.Is(err, kayofs.ErrMounted) || waited >= limit {
			_ = fd.Close()
			if errors.Is(err, kayofs.ErrMounted) {
				return nil, nil, fmt.Errorf("volume %s: (%s) stayed mounted as %s by another process (a terraform run, kayoctl or an agent) "+
					"for %s, the lock timeout; retry when it is done, or raise lock_timeout: %w",
					v.DriveLetter, v.ID, node, limit, err)
			}
			return nil, nil, fmt.Errorf("volume %s: on %s: %w", v.DriveLetter, node, err)
		}
		if onWait != nil && (notified.IsZero() || time.Since(notified) >= time.Second) {
			onWait(ctx, waited, limit)
			notified = time.Now()
		}
		d := min(poll/2+rand.N(poll/2+1), limit-waited)
		t := time.NewTimer(max(d, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			_ = fd.Close()
			return nil, nil, fmt.Errorf("volume %s: waiting for the mount of %s: %w", v.DriveLetter, node, ctx.Err())
		case <-t.C:
		}
		poll = min(poll*2, 50*time.Millisecond)
	}
}

// mountWaiting mounts v's opened device fd as node, waiting with backoff
// while another process (a node agent's executor, whose cached mount
// detaches once idle) holds that node's mount, up to the lock timeout.
func (e *Engine) mountWaiting(ctx context.Context, fd *kayofs.FileDevice, v Volume, node string, o kayofs.MountOptions) (*kayofs.Volume, error) {
	limit, _ := e.waitPolicy()
	start := time.Now()
	poll := time.Millisecond
	for {
		fv, err := kayofs.Mount(fd, node, o)
		if err == nil || !errors.Is(err, kayofs.ErrMounted) || time.Since(start) >= limit {
			return fv, err
		}
		t := time.NewTimer(poll/2 + rand.N(poll/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("volume %s: waiting for the mount of %s: %w", v.DriveLetter, node, ctx.Err())
		case <-t.C:
		}
		poll = min(poll*2, 50*time.Millisecond)
	}
}

// waitPolicy is the database's lock timeout and wait callback, which
// waits for a volume follow too.
func (e *Engine) waitPolicy() (time.Duration, store.WaitFunc) {
	if w, ok := e.st.(interface {
		WaitPolicy() (time.Duration, store.WaitFunc)
	}); ok {
		return w.WaitPolicy()
	}
	return DefaultLockTimeout, nil
}
