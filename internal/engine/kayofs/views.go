package kayofs

import (
	"sync"
)

// nsView is a mount's cached namespace (nscache.go) with what guards it.
// Mounts of one volume in one process may share it (Views).
type nsView struct {
	mu sync.Mutex // guards c's swaps and updates
	c  *nsCache
	rd []byte // loadNSx's read buffer of the directory table (under mu)
	// op: on a version-5 volume every namespace operation of a mount
	// holds it (in-process only; dirdom.go), since one that holds no
	// namespace lock may update the view.
	op sync.Mutex
	// removals: the group commit of RemoveDirOnly (removedirs.go).
	removals removalGroup
	refs     int // mounts using a shared view (under Views.mu)
}

// Views lets the mounts of one volume made by one process share one
// cached namespace view. A view is a copy of what the volume's directory
// table holds, checked against the namespace header's generation under
// the namespace lock before every use (nscache.go), so a view another
// mount of the same volume brought up to date is as good as one's own;
// unshared, each mount of a process that plays several nodes (the
// provider's embedded agents) reloads the whole table whenever another
// of them changed the namespace. Every user of a view holds its op
// mutex, so sharing it serialises the namespace operations of those
// mounts in this process, which the cluster's namespace lock does
// anyway for changes. Mounts share only when their devices name the same
// path (PathDevice) and their superblocks the same UUID.
type Views struct {
	mu sync.Mutex
	m  map[viewKey]*nsView // dropped with the last mount using it
}

type viewKey struct {
	path string
	uuid [16]byte
}

// NewViews returns an empty set of shared views (one per process, passed
// to every Mount in MountOptions.Views).
func NewViews() *Views { return &Views{m: map[viewKey]*nsView{}} }

// view returns the shared view of the volume uuid on dev for a new mount
// (release gives it back); ok false when s is nil or dev has no path (the
// mount keeps its own).
func (s *Views) view(dev Device, uuid [16]byte) (w *nsView, k viewKey, ok bool) {
	pd, isPath := dev.(PathDevice)
	if s == nil || !isPath || pd.Path() == "" {
		return nil, k, false
	}
	k = viewKey{path: pd.Path(), uuid: uuid}
	s.mu.Lock()
	defer s.mu.Unlock()
	w = s.m[k]
	if w == nil {
		w = &nsView{}
		s.m[k] = w
	}
	w.refs++
	return w, k, true
}

// release ends a mount's use of the view k; the last one's drops it, so a
// long-lived agent keeps no view of a volume it no longer mounts.
func (s *Views) release(k viewKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.m[k]; w != nil {
		if w.refs--; w.refs <= 0 {
			delete(s.m, k)
		}
	}
}

// dropView gives the mount's shared view back (once: the caller is the
// one that closed the mount).
func (v *Volume) dropView() {
	if v.views != nil {
		v.views.release(v.viewKey)
	}
}
