package kayofs

import (
	"fmt"
	"os"
	"sync"
	"unsafe"
)

// Direct I/O: a kernel's page cache is not coherent with another kernel's
// writes to a shared LUN, so a node on another host could read a metadata
// block it cached before the last writer's commit. A device opened with
// OpenDeviceDirect bypasses the page cache (O_DIRECT): every read sees what
// the LUN holds, every write reaches it (Sync still flushes its cache).
// O_DIRECT needs buffers, offsets and lengths aligned to the logical block
// size; dioAlign (4 KiB) covers 512-byte and 4Kn devices.
const dioAlign = 4096

// alignedBuf returns n bytes (n a multiple of dioAlign) whose address is
// dioAlign-aligned.
func alignedBuf(n int) []byte {
	b := make([]byte, n+dioAlign)
	off := int(uintptr(unsafe.Pointer(&b[0])) & (dioAlign - 1))
	if off != 0 {
		off = dioAlign - off
	}
	return b[off : off+n : off+n]
}

func isAligned(p []byte, off int64) bool {
	return off%dioAlign == 0 && len(p)%dioAlign == 0 && len(p) > 0 &&
		uintptr(unsafe.Pointer(&p[0]))&(dioAlign-1) == 0
}

// directIO does aligned I/O on an O_DIRECT descriptor, through bounce
// buffers when the caller's buffer or range is not aligned. An unaligned
// write reads the blocks around it first (read-modify-write): Kayo FS only
// does that for file data, never for metadata, which is block-sized.
type directIO struct {
	f  *os.File
	mu sync.Mutex // serializes read-modify-write of partial blocks
}

func (d *directIO) ReadAt(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if isAligned(p, off) {
		return d.f.ReadAt(p, off)
	}
	lo := off &^ (dioAlign - 1)
	hi := (off + int64(len(p)) + dioAlign - 1) &^ (dioAlign - 1)
	b := alignedBuf(int(hi - lo))
	n, err := d.f.ReadAt(b, lo)
	if n < int(off-lo) {
		return 0, err
	}
	c := copy(p, b[off-lo:n])
	if c < len(p) && err == nil {
		err = fmt.Errorf("kayofs: short direct read at %d", off)
	}
	return c, err
}

func (d *directIO) WriteAt(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if isAligned(p, off) {
		return d.f.WriteAt(p, off)
	}
	lo := off &^ (dioAlign - 1)
	hi := (off + int64(len(p)) + dioAlign - 1) &^ (dioAlign - 1)
	b := alignedBuf(int(hi - lo))
	d.mu.Lock()
	defer d.mu.Unlock()
	if off != lo || off+int64(len(p)) != hi {
		if _, err := d.f.ReadAt(b, lo); err != nil {
			return 0, fmt.Errorf("kayofs: direct read-modify-write at %d: %w", lo, err)
		}
	}
	copy(b[off-lo:], p)
	if _, err := d.f.WriteAt(b, lo); err != nil {
		return 0, err
	}
	return len(p), nil
}
