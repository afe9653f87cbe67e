package kayofuse

import (
	"context"
	"errors"
	"io"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

// handle is an open file.
type handle struct {
	n *node
	f *kayofs.File
}

var (
	_ fs.FileReader   = (*handle)(nil)
	_ fs.FileWriter   = (*handle)(nil)
	_ fs.FileFlusher  = (*handle)(nil)
	_ fs.FileFsyncer  = (*handle)(nil)
	_ fs.FileReleaser = (*handle)(nil)
)

func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if e := h.n.fsys.enter(); e != 0 {
		return nil, e
	}
	defer h.n.fsys.leave()
	if err := h.n.flush(); err != nil {
		return nil, h.n.fsys.errno("read", h.f.Name(), err)
	}
	got, err := h.f.ReadAt(dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, h.n.fsys.errno("read", h.f.Name(), err)
	}
	return fuse.ReadResultData(dest[:got]), 0
}

func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if e := h.n.fsys.enter(); e != 0 {
		return 0, e
	}
	defer h.n.fsys.leave()
	if err := h.n.write(h.f, data, off); err != nil {
		return 0, h.n.fsys.errno("write", h.f.Name(), err)
	}
	return uint32(len(data)), 0
}

// Flush is every close(2) of the file: gathered writes go to the volume
// and their error, if any, is close's.
func (h *handle) Flush(ctx context.Context) syscall.Errno {
	if e := h.n.fsys.enter(); e != 0 {
		return e
	}
	defer h.n.fsys.leave()
	return h.n.fsys.errno("close", h.f.Name(), h.n.settle())
}

func (h *handle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if e := h.n.fsys.enter(); e != 0 {
		return e
	}
	defer h.n.fsys.leave()
	if err := h.n.settle(); err != nil {
		return h.n.fsys.errno("fsync", h.f.Name(), err)
	}
	return h.n.fsys.errno("fsync", h.f.Name(), h.f.Sync())
}

// Release is the last close of this open file; Flush came before it.
func (h *handle) Release(ctx context.Context) syscall.Errno {
	if e := h.n.fsys.enter(); e != 0 {
		return 0 // nothing to write any more
	}
	defer h.n.fsys.leave()
	if err := h.n.settle(); err != nil {
		// nobody can receive this error any more: it is logged
		_ = h.n.fsys.errno("release", h.f.Name(), err)
	}
	h.n.mu.Lock()
	if h.n.pending == nil {
		h.n.buf = nil // the buffer's memory goes with the last writer
	}
	h.n.mu.Unlock()
	return 0
}

// write gathers data at off into the node's sequential write buffer, or
// writes it to the volume when it does not continue the buffer or the
// buffer is full. It returns the error of an earlier gathered write.
func (n *node) write(f *kayofs.File, data []byte, off int64) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.werr; err != nil {
		n.werr = nil
		return err
	}
	limit := n.fsys.o.WriteBehind
	if limit < 0 {
		_, err := f.WriteAt(data, off)
		return err
	}
	if n.pending != nil && off == n.bufOff+int64(len(n.buf)) && len(n.buf)+len(data) <= limit {
		n.buf = append(n.buf, data...)
	} else {
		if err := n.flushLocked(); err != nil {
			n.werr = nil
			return err
		}
		if len(data) >= limit {
			_, err := f.WriteAt(data, off)
			return err
		}
		if n.buf == nil {
			n.buf = make([]byte, 0, limit)
		}
		n.pending, n.bufOff, n.buf = f, off, append(n.buf[:0], data...)
		n.fsys.dirtyMu.Lock()
		n.fsys.dirty[n] = struct{}{}
		n.fsys.dirtyMu.Unlock()
	}
	if len(n.buf) >= limit {
		err := n.flushLocked()
		n.werr = nil
		return err
	}
	return nil
}

// flushLocked writes the gathered writes to the volume; a failure is also
// kept in werr for the writer's next write, fsync or close. n.mu is held.
func (n *node) flushLocked() error {
	if n.pending == nil {
		return nil
	}
	f, b, off := n.pending, n.buf, n.bufOff
	n.pending, n.buf = nil, n.buf[:0]
	n.fsys.dirtyMu.Lock()
	delete(n.fsys.dirty, n)
	n.fsys.dirtyMu.Unlock()
	if _, err := f.WriteAt(b, off); err != nil {
		n.werr = err
		return err
	}
	return nil
}

// flush writes the gathered writes before a read or a change of the file.
func (n *node) flush() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.flushLocked()
}

// settle flushes and returns, once, the error of any gathered write.
func (n *node) settle() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	err := n.flushLocked()
	if err == nil {
		err = n.werr
	}
	n.werr = nil
	return err
}

// discard drops the gathered writes of a file being removed.
func (n *node) discard() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.pending, n.buf, n.werr = nil, nil, nil
	n.fsys.dirtyMu.Lock()
	delete(n.fsys.dirty, n)
	n.fsys.dirtyMu.Unlock()
}
