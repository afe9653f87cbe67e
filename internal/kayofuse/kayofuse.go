// Package kayofuse serves a mounted Kayo FS volume to the kernel through
// FUSE, so ordinary tools (ls, cp, mv, df, qemu-img) work on it as on any
// directory: the volume's root is the mount point, and a VM's VHD
// O:\WEB01\WEB01.vhd is DIR/WEB01/WEB01.vhd.
//
// Every request goes through the kayofs Volume API, which takes the
// volume's cluster locks, so the mount is one more node among the others
// rather than a way around them. Errors kayofs names (no such file, not
// empty, no space, ...) become their errno; every other error — a lost
// lease, an unmounted volume, corrupt metadata, an I/O error — is EIO, and
// once the mount itself is lost every later request is EIO too: a write
// never looks as if it succeeded when the volume did not take it.
//
// Coherence with other nodes is close-to-open, as on NFS: the kernel may
// cache names and attributes for Options.CacheTimeout, and drops its cached
// file data whenever a file is opened.
package kayofuse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrUnavailable: this process cannot mount FUSE file systems (not
	// root, or no /dev/fuse).
	ErrUnavailable = errors.New("FUSE mounts are not available")
	// ErrMountpoint: the mount point is missing, not a directory, or not
	// empty.
	ErrMountpoint = errors.New("unusable mount point")
	// ErrBusy: the mount point was busy at Unmount (a process had a file
	// open or its working directory there); it was detached lazily.
	ErrBusy = errors.New("mount point busy")
)

// DevFuse is the FUSE device.
const DevFuse = "/dev/fuse"

// Options tune a mount. The zero value is the default.
type Options struct {
	// CacheTimeout is how long the kernel may cache names and attributes;
	// changes other nodes make show within it. Default 1s; negative: none.
	CacheTimeout time.Duration
	// WriteBehind is how many bytes of sequential writes to one file are
	// gathered before they go to the volume (each kayofs write that
	// allocates commits a journal transaction with its syncs: gathering
	// them spares most of those). An error of a gathered write is returned
	// by the next write, fsync or close of the file. Default 4 MiB;
	// negative: every write goes to the volume before it returns.
	WriteBehind int
	// Logf receives the errors that became EIO, and FUSE debug output
	// when Debug is set. Default: discarded.
	Logf func(format string, args ...any)
	// Debug logs every FUSE request.
	Debug bool
}

const (
	defaultCacheTimeout = time.Second
	defaultWriteBehind  = 4 << 20
	// maxIO is the largest read or write the kernel sends (its limit is
	// 1 MiB with max_pages; go-fuse clamps to what the kernel allows).
	maxIO = 1 << 20
)

// Available says whether this process can mount FUSE file systems without
// a fusermount helper: it must be root, with /dev/fuse present.
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: mounting without fusermount needs root (running as uid %d)", ErrUnavailable, os.Geteuid())
	}
	st, err := os.Stat(DevFuse)
	if err != nil {
		return fmt.Errorf("%w: %v (load the fuse kernel module: modprobe fuse)", ErrUnavailable, err)
	}
	if st.Mode()&os.ModeCharDevice == 0 {
		return fmt.Errorf("%w: %s is not a character device", ErrUnavailable, DevFuse)
	}
	return nil
}

// CheckMountpoint refuses a mount point that does not exist, is not a
// directory, or is not empty (mounting over files would hide them).
func CheckMountpoint(dir string) error {
	st, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %s does not exist (create an empty directory first)", ErrMountpoint, dir)
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMountpoint, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", ErrMountpoint, dir)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMountpoint, err)
	}
	defer d.Close()
	names, err := d.Readdirnames(3)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %v", ErrMountpoint, err)
	}
	if len(names) > 0 {
		return fmt.Errorf("%w: %s is not empty (it holds %q%s); mount on an empty directory", ErrMountpoint, dir, names[0], more(len(names)))
	}
	return nil
}

func more(n int) string {
	if n > 1 {
		return " and more"
	}
	return ""
}

// Server is a mounted volume.
type Server struct {
	srv  *fuse.Server
	dir  string
	fsys *fsys
	// done is closed when the kernel connection ends (unmounted, by
	// Unmount or by umount(8)).
	done chan struct{}
	// detached: Unmount detached the mount lazily (it was busy).
	detached bool
}

// Mount serves v at dir, which must be an empty directory. The caller
// keeps v mounted until the Server is done (Unmount, or Done after
// someone ran umount) and then detaches or unmounts it.
func Mount(v *kayofs.Volume, dir string, o Options) (*Server, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if err := CheckMountpoint(dir); err != nil {
		return nil, err
	}
	if o.CacheTimeout == 0 {
		o.CacheTimeout = defaultCacheTimeout
	}
	o.CacheTimeout = max(o.CacheTimeout, 0)
	if o.WriteBehind == 0 {
		o.WriteBehind = defaultWriteBehind
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	f := &fsys{v: v, o: o, dirty: map[*node]struct{}{}}
	timeout := o.CacheTimeout
	label := v.Label()
	if label == "" {
		label = v.UUID()
	}
	opts := &fs.Options{
		EntryTimeout: &timeout,
		AttrTimeout:  &timeout,
		MountOptions: fuse.MountOptions{
			DirectMountStrict: true, // as root: mount(2) itself, no fusermount
			FsName:            "kayofs:" + label,
			Name:              "kayofs",
			// Other users may browse; the kernel checks the modes Getattr
			// reports (files 0644, directories 0755, owned by root).
			AllowOther:    true,
			Options:       []string{"default_permissions"},
			MaxWrite:      maxIO,
			MaxReadAhead:  maxIO,
			DisableXAttrs: true,
			Debug:         o.Debug,
			Logger:        newLogger(o.Logf),
			MaxBackground: 64,
		},
		Logger: newLogger(o.Logf),
	}
	root := &node{fsys: f}
	srv, err := fs.Mount(dir, root, opts)
	if err != nil {
		return nil, fmt.Errorf("mounting %s at %s: %w", label, dir, err)
	}
	s := &Server{srv: srv, dir: dir, fsys: f, done: make(chan struct{})}
	go func() {
		srv.Wait()
		close(s.done)
	}()
	return s, nil
}

// errStopped: the mount was stopped while the kernel still had it.
var errStopped = errors.New("kayofuse: mount stopped")

// Dir is the mount point.
func (s *Server) Dir() string { return s.dir }

// Done is closed once the kernel connection has ended.
func (s *Server) Done() <-chan struct{} { return s.done }

// Unmount (from one goroutine) unmounts the volume and waits until the
// kernel connection has ended and every gathered write is on the volume.
// A busy mount point is detached lazily (it disappears from the tree at
// once; open files keep working until closed) and Unmount waits for those
// files until ctx is done; it then lands the gathered writes, fails every
// later request with EIO and returns an error wrapping ErrBusy.
func (s *Server) Unmount(ctx context.Context) error {
	select {
	case <-s.done:
		return s.fsys.stop(errStopped, s.fsys.flushAll)
	default:
	}
	if !s.detached {
		err := s.srv.Unmount()
		if err != nil && !errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("unmounting %s: %w", s.dir, err)
		}
		if err != nil {
			if err := syscall.Unmount(s.dir, syscall.MNT_DETACH); err != nil {
				return fmt.Errorf("unmounting %s lazily: %w", s.dir, err)
			}
			s.detached = true
		}
	}
	if s.detached {
		select {
		case <-s.done:
		case <-ctx.Done():
			// Still connected: land the gathered writes, then fail every
			// request, so the caller can detach the volume safely.
			err := s.fsys.stop(errStopped, s.fsys.flushAll)
			return errors.Join(fmt.Errorf("%s: %w: detached, but files there were still open (they fail with EIO from now on): %w",
				s.dir, ErrBusy, ctx.Err()), err)
		}
	}
	<-s.done
	return s.fsys.stop(errStopped, s.fsys.flushAll)
}

// fsys is the state every node of one mount shares.
type fsys struct {
	v *kayofs.Volume
	o Options
	// gate orders requests against stop (enter, leave).
	gate sync.RWMutex
	// lost is set once the mount itself is gone (unmounted under us, or
	// fenced) or stopped: from then on every request is EIO.
	lostMu sync.Mutex
	lost   error
	// dirty holds the nodes with gathered writes not yet on the volume.
	dirtyMu sync.Mutex
	dirty   map[*node]struct{}
}

// enter starts a request: EIO once the mount is lost or stopped. Every
// request that touches the volume holds the gate (shared) from enter to
// leave, so stop can wait for the requests in flight.
func (f *fsys) enter() syscall.Errno {
	f.gate.RLock()
	f.lostMu.Lock()
	lost := f.lost
	f.lostMu.Unlock()
	if lost != nil {
		f.gate.RUnlock()
		return syscall.EIO
	}
	return 0
}

func (f *fsys) leave() { f.gate.RUnlock() }

// stop waits for the requests in flight, runs last (under the gate, so no
// request runs with it), and fails every later request with EIO: after
// stop the caller may detach the volume while the kernel still sends
// requests (a lazily detached mount whose files are still open).
func (f *fsys) stop(why error, last func() error) error {
	f.gate.Lock()
	defer f.gate.Unlock()
	var err error
	if last != nil {
		err = last()
	}
	f.lostMu.Lock()
	if f.lost == nil {
		f.lost = why
	}
	f.lostMu.Unlock()
	return err
}

// errno maps a kayofs error to what the kernel should see.
func (f *fsys) errno(op, path string, err error) syscall.Errno {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, kayofs.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, kayofs.ErrExist):
		return syscall.EEXIST
	case errors.Is(err, kayofs.ErrNotDir):
		return syscall.ENOTDIR
	case errors.Is(err, kayofs.ErrIsDir):
		return syscall.EISDIR
	case errors.Is(err, kayofs.ErrNotEmpty):
		return syscall.ENOTEMPTY
	case errors.Is(err, kayofs.ErrInvalidPath), errors.Is(err, kayofs.ErrInvalid):
		return syscall.EINVAL
	case errors.Is(err, kayofs.ErrNoSpace), errors.Is(err, kayofs.ErrNoInodes):
		return syscall.ENOSPC
	case errors.Is(err, kayofs.ErrFragmented):
		return syscall.EFBIG
	case errors.Is(err, kayofs.ErrStale):
		return syscall.ESTALE
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	}
	if mountLost(err) {
		f.lostMu.Lock()
		if f.lost == nil {
			f.lost = err
			f.o.Logf("kayofs mount lost; every request fails with EIO from now on: %v", err)
		}
		f.lostMu.Unlock()
	}
	f.o.Logf("%s %q: %v (EIO)", op, path, err)
	return syscall.EIO
}

// mountLost says whether err means this node's mount is gone for good.
func mountLost(err error) bool {
	// A mount that fenced itself (its lease lapsed) writes no more.
	return errors.Is(err, kayofs.ErrUnmounted) || errors.Is(err, kayofs.ErrFenced)
}

// flushAll writes every gathered write to the volume.
func (f *fsys) flushAll() error {
	f.dirtyMu.Lock()
	nodes := make([]*node, 0, len(f.dirty))
	for n := range f.dirty {
		nodes = append(nodes, n)
	}
	f.dirtyMu.Unlock()
	var errs []error
	for _, n := range nodes {
		if err := n.flush(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
