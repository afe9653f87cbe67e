package kayofs

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
)

// Device is the block device a volume lives on.
type Device interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
	Size() int64
}

// PathDevice is a Device backed by a path every node can open; Mount and
// Format use the path to open a private descriptor for cluster locks.
type PathDevice interface {
	Device
	Path() string
}

// FileDevice is a sparse image file or a block device.
type FileDevice struct {
	f    *os.File
	dio  *directIO // set by OpenDeviceDirect: reads and writes bypass the page cache
	path string
	size atomic.Int64 // re-read by Grow: the LUN may have grown since open
}

var _ PathDevice = (*FileDevice)(nil)

// CreateImage creates a new sparse image file of the given size (Truncate,
// so nothing is allocated). It fails if the file exists.
func CreateImage(path string, size int64) (*FileDevice, error) {
	if size <= 0 {
		return nil, fmt.Errorf("%w: image size %d", ErrInvalid, size)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		os.Remove(abs)
		return nil, fmt.Errorf("kayofs: sizing image %s to %d bytes: %w", abs, size, err)
	}
	d := &FileDevice{f: f, path: abs}
	d.size.Store(size)
	return d, nil
}

// OpenDevice opens an existing image file or block device by absolute path.
func OpenDevice(path string) (*FileDevice, error) { return openDevice(path, 0) }

// OpenDeviceExclusive is OpenDevice for probing and formatting: a block
// device is opened with O_EXCL, which Linux refuses (EBUSY) while the
// device is mounted or claimed by a device mapper, an MD array or another
// exclusive opener. Image files open as with OpenDevice.
func OpenDeviceExclusive(path string) (*FileDevice, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0 {
		return openDevice(path, os.O_EXCL)
	}
	return openDevice(path, 0)
}

// OpenDeviceDirect is OpenDevice with every read and write going around the
// page cache (direct.go): what a node on a LUN shared between hosts needs,
// so that a read under a cluster lock sees the last writer's blocks.
func OpenDeviceDirect(path string) (*FileDevice, error) {
	d, err := openDevice(path, 0)
	if err != nil {
		return nil, err
	}
	f, err := openDirect(path, 0)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("kayofs: opening %s for direct I/O: %w", path, err)
	}
	d.dio = &directIO{f: f}
	return d, nil
}

func openDevice(path string, flags int) (*FileDevice, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("%w: device path %q is not absolute", ErrInvalid, path)
	}
	f, err := os.OpenFile(path, os.O_RDWR|flags, 0)
	if err != nil {
		return nil, err
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, err
	}
	d := &FileDevice{f: f, path: path}
	d.size.Store(size)
	return d, nil
}

func (d *FileDevice) ReadAt(p []byte, off int64) (int, error) {
	if d.dio != nil {
		return d.dio.ReadAt(p, off)
	}
	n, err := d.f.ReadAt(p, off)
	if err == io.EOF && n == len(p) {
		err = nil
	}
	return n, err
}

func (d *FileDevice) WriteAt(p []byte, off int64) (int, error) {
	if size := d.size.Load(); off < 0 || off+int64(len(p)) > size {
		return 0, fmt.Errorf("%w: write [%d,%d) beyond device size %d", ErrInvalid, off, off+int64(len(p)), size)
	}
	if d.dio != nil {
		return d.dio.WriteAt(p, off)
	}
	return d.f.WriteAt(p, off)
}

// Sync makes every write so far durable (fdatasync on Linux).
func (d *FileDevice) Sync() error {
	if err := datasync(d.f); err != nil {
		return fmt.Errorf("kayofs: syncing %s: %w", d.path, err)
	}
	return nil
}
func (d *FileDevice) Size() int64 { return d.size.Load() }

// refreshSize re-reads the size of the image or device (it only grows).
func (d *FileDevice) refreshSize() error {
	n, err := d.f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if n > d.size.Load() {
		d.size.Store(n)
	}
	return nil
}
func (d *FileDevice) Path() string { return d.path }
func (d *FileDevice) Close() error {
	if d.dio != nil {
		d.dio.f.Close()
	}
	return d.f.Close()
}

// readBlock reads one block.
func readBlock(dev Device, bs int, blk uint64) ([]byte, error) {
	b := make([]byte, bs)
	if _, err := dev.ReadAt(b, int64(blk)*int64(bs)); err != nil {
		return nil, fmt.Errorf("kayofs: reading block %d: %w", blk, err)
	}
	return b, nil
}

func writeBlock(dev Device, bs int, blk uint64, b []byte) error {
	if _, err := dev.WriteAt(b[:bs], int64(blk)*int64(bs)); err != nil {
		return fmt.Errorf("kayofs: writing block %d: %w", blk, err)
	}
	return nil
}
