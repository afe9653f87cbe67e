package engine

import (
	"os"
	"sync"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

// DefaultMountIdle is how long an unused cached volume mount stays
// attached (volume_mounts.go).
const DefaultMountIdle = 50 * time.Millisecond

// Runtime is the state of one process that its engines share: who the
// process is when it holds a VM's pending operation, the operations it
// runs now, and its cached Kayo FS mounts. A binary makes one and opens
// every engine on it (Config.Runtime), so an operation one engine runs is
// never taken for abandoned by another, and one mount per node serves
// them all. An engine opened without one gets its own.
type Runtime struct {
	host string
	pid  int
	// id tells this runtime's operations from another's of the same
	// process (an engine opened without a shared Runtime).
	id string
	// liveOps are the pending operations (by ID) this runtime runs now.
	liveOps sync.Map
	mounts  *mountCache
	// volumeWorkLocks serialise this runtime's VM file work on one volume
	// (serialVolume): volume ID → *sync.Mutex.
	volumeWorkLocks sync.Map
	// views: the namespace views this runtime's Kayo FS mounts share
	// (kayofs.Views), one per volume.
	views *kayofs.Views
}

// NewRuntime returns the runtime of this process.
func NewRuntime() *Runtime {
	host, _ := os.Hostname()
	return &Runtime{host: host, pid: os.Getpid(), id: randomHex(4),
		mounts: &mountCache{m: map[mountKey]*sharedMount{}, idle: DefaultMountIdle}, views: kayofs.NewViews()}
}

// SetMountIdle sets how long an unused cached volume mount stays attached
// (DefaultMountIdle unless set), before the runtime's first operation. A
// process that releases its mounts when it exits (ReleaseMounts) may keep
// them longer: the provider, whose operations reach each node of a
// cluster only every few hundred milliseconds while an apply spreads them
// over its nodes, mounted a node again for nearly every one.
func (r *Runtime) SetMountIdle(d time.Duration) {
	r.mounts.mu.Lock()
	defer r.mounts.mu.Unlock()
	r.mounts.idle = d
}

// ReleaseMounts detaches every idle volume mount the runtime caches. A
// binary calls it before it exits.
func (r *Runtime) ReleaseMounts() { r.mounts.releaseMounts("") }

// MountsMade is how many Kayo FS mounts the runtime has made: a control
// plane whose node work its agents do makes none (tests count them).
func (r *Runtime) MountsMade() int64 { return r.mounts.made.Load() }

// running marks pending operation id as run by this runtime until the
// returned func is called.
func (r *Runtime) running(id string) (done func()) {
	r.liveOps.Store(id, true)
	return func() { r.liveOps.Delete(id) }
}

// runs reports whether this runtime runs pending operation id now.
func (r *Runtime) runs(id string) bool {
	_, ok := r.liveOps.Load(id)
	return ok
}
