package vhd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// File is the storage a VHD lives in: an *os.File satisfies it, and so
// can a file on the clustered volume. Writes beyond the end must extend
// the file, and the extension must read as zeros.
type File interface {
	io.ReaderAt
	io.WriterAt
	Truncate(size int64) error
}

// Allocator is implemented by files that can reserve space without
// writing it (unwritten extents, like fallocate(2) mode 0): the range
// [off, off+n) gets backing storage, reads as zeros, and the file grows
// to at least off+n. Create and Grow use it for fixed disks; a file that
// lacks it, or whose Allocate returns an error wrapping
// errors.ErrUnsupported, is sized with Truncate (sparse) instead. Fixed
// disks are never zero-filled.
type Allocator interface {
	Allocate(off, n int64) error
}

// Options say what Create makes.
type Options struct {
	// Type is Fixed or Dynamic (required).
	Type DiskType
	// Size is the requested virtual size in bytes; the disk's real size,
	// Disk.Size(), is RoundSize(Size): never smaller, and larger by less
	// than one CHS cylinder (~2 MiB) below ~127.5 GiB. At most MaxSize.
	Size int64
	// BlockSize of a dynamic disk: a power of two from 512 bytes to
	// 256 MiB; 0 means DefaultBlockSize (2 MiB). Ignored for fixed disks.
	BlockSize int64
	// UUID of the disk; the zero value means a random one.
	UUID UUID
	// Time is the creation time written in the footer (the injected
	// clock); the zero time is written as 2000-01-01 00:00:00 UTC.
	Time time.Time
}

// Errors callers may test for with errors.Is.
var (
	ErrOutOfRange = errors.New("vhd: access beyond the end of the virtual disk")
	ErrShrink     = errors.New("vhd: a VHD cannot shrink")
	ErrNoRoom     = errors.New("vhd: no room to grow the block allocation table")
)

// Disk is an open VHD. Its methods are safe for concurrent use; it
// caches the footer, dynamic header and BAT, so one Disk should own the
// file while it is open.
type Disk struct {
	mu       sync.RWMutex
	f        File
	footer   Footer
	fileSize int64

	// dynamic disks only
	hdr    *Header
	hdrOff int64
	bat    []uint32
	bmSize int64
	bmMu   sync.Mutex
	bmaps  map[uint32][]byte // cached sector bitmaps by block index

	// differencing disks only: the open parent (read-only) and the path
	// it was opened by
	parent     *Disk
	parentPath string
}

// Create writes a new, empty VHD into f, discarding f's previous
// contents, and returns it open.
//
// A fixed disk is its data followed by the footer; the data is reserved
// with Allocator.Allocate when f offers it, else the file is extended
// sparsely with Truncate. A dynamic disk is a footer copy at 0, the
// dynamic header at 512, the BAT at 1536 (all entries unallocated,
// padded to a sector) and the footer; blocks are added on first write.
func Create(f File, opts Options) (*Disk, error) {
	if opts.Type != Fixed && opts.Type != Dynamic {
		return nil, fmt.Errorf("vhd: Options.Type must be Fixed or Dynamic, got %v", opts.Type)
	}
	size, err := RoundSize(opts.Size)
	if err != nil {
		return nil, err
	}
	u := opts.UUID
	if u == (UUID{}) {
		if u, err = NewUUID(); err != nil {
			return nil, err
		}
	}
	ft := Footer{
		Features:       featureReserve,
		Version:        formatVersion,
		DataOffset:     fixedDataOff,
		Timestamp:      Timestamp(opts.Time),
		CreatorVersion: CreatorVersion,
		OriginalSize:   uint64(size),
		CurrentSize:    uint64(size),
		Geometry:       CHS(size / SectorSize),
		DiskType:       opts.Type,
		UUID:           u,
	}
	copy(ft.CreatorApp[:], CreatorApp)
	copy(ft.CreatorHostOS[:], CreatorHostOS)
	if err := f.Truncate(0); err != nil {
		return nil, fmt.Errorf("vhd: truncating file: %w", err)
	}
	if opts.Type == Fixed {
		if err := extend(f, 0, size); err != nil {
			return nil, err
		}
		if _, err := f.WriteAt(ft.Marshal(), size); err != nil {
			return nil, fmt.Errorf("vhd: writing footer: %w", err)
		}
		return &Disk{f: f, footer: ft, fileSize: size + FooterSize}, nil
	}

	bs := opts.BlockSize
	if bs == 0 {
		bs = DefaultBlockSize
	}
	if bs < SectorSize || bs > 256<<20 || bs&(bs-1) != 0 {
		return nil, fmt.Errorf("vhd: block size %d is not a power of two between 512 bytes and 256 MiB", bs)
	}
	entries := uint32((size + bs - 1) / bs)
	ft.DataOffset = FooterSize
	hdr := &Header{
		DataOffset:      fixedDataOff, // "unused": all ones, as Microsoft's tools expect
		TableOffset:     FooterSize + HeaderSize,
		Version:         formatVersion,
		MaxTableEntries: entries,
		BlockSize:       uint32(bs),
	}
	return writeSparse(f, ft, hdr, nil, "dynamic")
}

// writeSparse writes a dynamic or differencing disk's structures from
// offset 0 — footer copy, header, an empty block table, the extra
// sector-aligned data (parent locators, at the offsets hdr names), footer
// — and returns the disk over them.
func writeSparse(f File, ft Footer, hdr *Header, extra [][]byte, kind string) (*Disk, error) {
	entries := hdr.MaxTableEntries
	batLen := batBytes(entries)
	fb := ft.Marshal()
	buf := make([]byte, 0, FooterSize+HeaderSize+batLen+FooterSize)
	buf = append(buf, fb...)
	buf = append(buf, hdr.Marshal()...)
	for i := int64(0); i < batLen; i++ {
		buf = append(buf, 0xFF)
	}
	for _, b := range extra {
		buf = append(buf, b...)
	}
	buf = append(buf, fb...)
	if _, err := f.WriteAt(buf, 0); err != nil {
		return nil, fmt.Errorf("vhd: writing %s disk structures: %w", kind, err)
	}
	bat := make([]uint32, entries)
	for i := range bat {
		bat[i] = unallocated
	}
	return &Disk{
		f: f, footer: ft, fileSize: int64(len(buf)),
		hdr: hdr, hdrOff: FooterSize, bat: bat, bmSize: bitmapSize(hdr.BlockSize),
		bmaps: map[uint32][]byte{},
	}, nil
}

// extend makes [off, off+n) part of f as reserved-but-unwritten space if f
// is an Allocator, else sparsely with Truncate (f is assumed no longer
// than off+n).
func extend(f File, off, n int64) error {
	if a, ok := f.(Allocator); ok {
		err := a.Allocate(off, n)
		if err == nil {
			return nil
		}
		if !errors.Is(err, errors.ErrUnsupported) {
			return fmt.Errorf("vhd: allocating %d bytes at %d: %w", n, off, err)
		}
	}
	if err := f.Truncate(off + n); err != nil {
		return fmt.Errorf("vhd: extending file to %d bytes: %w", off+n, err)
	}
	return nil
}

// Open reads the VHD in f, whose length is fileSize, validating the
// footer and, for dynamic disks, the dynamic header and BAT bounds.
// Errors about damage wrap ErrCorrupt. The virtual size is the footer's
// current size (as Hyper-V reads it), not the CHS geometry. A
// differencing disk is refused with a *ParentError wrapping
// ErrParentRequired: open it with OpenChain.
func Open(f File, fileSize int64) (*Disk, error) {
	return OpenChain(f, fileSize, nil)
}

// openImage is Open without resolving a differencing disk's parent.
func openImage(f File, fileSize int64) (*Disk, error) {
	if fileSize < FooterSize {
		return nil, fmt.Errorf("%w: file is %d bytes, too small for a footer", ErrCorrupt, fileSize)
	}
	ft, err := readFooter(f, fileSize-FooterSize)
	if err != nil {
		err = fmt.Errorf("footer at end of file: %w", err)
		if cp, err2 := readFooter(f, 0); err2 == nil && cp.DiskType != Fixed {
			err = fmt.Errorf("%w (the footer copy at offset 0 is intact: the file was truncated or its tail damaged)", err)
		}
		return nil, err
	}
	if err := ft.validate(); err != nil {
		return nil, err
	}
	size := int64(ft.CurrentSize)
	d := &Disk{f: f, footer: *ft, fileSize: fileSize}
	if ft.DiskType == Fixed {
		if fileSize-FooterSize < size {
			return nil, fmt.Errorf("%w: fixed disk of %d bytes in a file of only %d bytes (truncated)", ErrCorrupt, size, fileSize)
		}
		return d, nil
	}

	if ft.DataOffset < FooterSize || ft.DataOffset%SectorSize != 0 || ft.DataOffset > uint64(fileSize-FooterSize-HeaderSize) {
		return nil, fmt.Errorf("%w: dynamic header offset %d is outside the file (%d bytes)", ErrCorrupt, ft.DataOffset, fileSize)
	}
	hb := make([]byte, HeaderSize)
	if _, err := f.ReadAt(hb, int64(ft.DataOffset)); err != nil {
		return nil, fmt.Errorf("vhd: reading dynamic header: %w", err)
	}
	hdr, err := ParseHeader(hb)
	if err != nil {
		return nil, err
	}
	need := (size + int64(hdr.BlockSize) - 1) / int64(hdr.BlockSize)
	if int64(hdr.MaxTableEntries) < need {
		return nil, fmt.Errorf("%w: BAT has %d entries, a %d-byte disk of %d-byte blocks needs %d", ErrCorrupt, hdr.MaxTableEntries, size, hdr.BlockSize, need)
	}
	bl := batBytes(hdr.MaxTableEntries)
	if hdr.TableOffset%SectorSize != 0 || hdr.TableOffset < FooterSize || hdr.TableOffset > uint64(fileSize) || int64(hdr.TableOffset) > fileSize-FooterSize-bl {
		return nil, fmt.Errorf("%w: BAT at %d (%d bytes) is outside the file (%d bytes)", ErrCorrupt, hdr.TableOffset, bl, fileSize)
	}
	bat, err := readBAT(f, int64(hdr.TableOffset), hdr.MaxTableEntries)
	if err != nil {
		return nil, err
	}
	d.hdr, d.hdrOff, d.bat = hdr, int64(ft.DataOffset), bat
	d.bmSize = bitmapSize(hdr.BlockSize)
	d.bmaps = map[uint32][]byte{}
	for i, e := range bat {
		if e == unallocated {
			continue
		}
		if end := int64(e)*SectorSize + d.bmSize + int64(hdr.BlockSize); int64(e)*SectorSize < FooterSize || end > fileSize-FooterSize {
			return nil, fmt.Errorf("%w: BAT entry %d points to sector %d, a block outside the file (%d bytes)", ErrCorrupt, i, e, fileSize)
		}
	}
	return d, nil
}

func readFooter(f File, off int64) (*Footer, error) {
	b := make([]byte, FooterSize)
	if _, err := f.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("vhd: reading footer at %d: %w", off, err)
	}
	return ParseFooter(b)
}

func readBAT(f File, off int64, n uint32) ([]uint32, error) {
	b := make([]byte, int64(n)*4)
	if _, err := f.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("vhd: reading BAT: %w", err)
	}
	bat := make([]uint32, n)
	for i := range bat {
		bat[i] = binary.BigEndian.Uint32(b[i*4:])
	}
	return bat, nil
}

// Size is the virtual disk size in bytes.
func (d *Disk) Size() int64 {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return int64(d.footer.CurrentSize)
}

// Type is Fixed, Dynamic or Differencing.
func (d *Disk) Type() DiskType {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.footer.DiskType
}

// Footer returns a copy of the current footer.
func (d *Disk) Footer() Footer {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.footer
}

// FileSize is the length of the image file, which dynamic disks grow on
// writes to new blocks; pass it to Open next time.
func (d *Disk) FileSize() int64 {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.fileSize
}

// BlockSize is the block size of a dynamic disk, 0 for a fixed one.
func (d *Disk) BlockSize() int64 {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.hdr == nil {
		return 0
	}
	return int64(d.hdr.BlockSize)
}

// ReadAt reads virtual-disk bytes at off. Unallocated blocks, and
// sectors a block's bitmap marks unused, read as zeros. Reads past Size
// return io.EOF as io.ReaderAt requires.
func (d *Disk) ReadAt(p []byte, off int64) (int, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	size := int64(d.footer.CurrentSize)
	if off < 0 {
		return 0, fmt.Errorf("vhd: negative offset %d", off)
	}
	if off >= size {
		return 0, io.EOF
	}
	var eof error
	if int64(len(p)) > size-off {
		p, eof = p[:size-off], io.EOF
	}
	var err error
	if d.hdr == nil {
		err = readFull(d.f, p, off)
	} else {
		err = d.readDynamic(p, off)
	}
	if err != nil {
		return 0, err
	}
	return len(p), eof
}

// WriteAt writes virtual-disk bytes at off; p must lie within Size
// (ErrOutOfRange otherwise, and nothing is written). Dynamic disks
// allocate blocks on first write.
func (d *Disk) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%w: negative offset %d", ErrOutOfRange, off)
	}
	if d.hdr == nil {
		d.mu.RLock()
		defer d.mu.RUnlock()
	} else {
		d.mu.Lock()
		defer d.mu.Unlock()
	}
	if size := int64(d.footer.CurrentSize); off > size || int64(len(p)) > size-off {
		return 0, fmt.Errorf("%w: %d bytes at %d, disk is %d bytes", ErrOutOfRange, len(p), off, size)
	}
	if d.hdr == nil {
		return d.f.WriteAt(p, off)
	}
	write := d.writeDynamic
	if d.footer.DiskType == Differencing {
		write = d.writeChildAt
	}
	if err := write(p, off); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Grow enlarges the virtual disk to RoundSize(newSize); a smaller size
// is ErrShrink, the same size a no-op. The footer's current size and
// geometry change; the original size is kept.
//
// Fixed: the new footer is written past the old end first (the disk is
// valid at the new size from then on), the added space is reserved
// (Allocator) or left sparse, and the old footer's sector is zeroed.
//
// Dynamic: if the BAT needs more entries and its sector padding, or the
// space up to the first data block, holds them, it grows in place;
// otherwise the whole BAT is rewritten after the last block and the
// header repointed to it (the old BAT's sectors become unused). Each
// step leaves a valid image: BAT space and a footer still stating the
// old size first, then the header (one sector), then the new footers.
func (d *Disk) Grow(newSize int64) error {
	size, err := RoundSize(newSize)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	old := int64(d.footer.CurrentSize)
	if size < old {
		return fmt.Errorf("%w: %d bytes requested, disk is %d bytes", ErrShrink, size, old)
	}
	if size == old {
		return nil
	}
	nf := d.footer
	nf.CurrentSize = uint64(size)
	nf.Geometry = CHS(size / SectorSize)
	if d.hdr == nil {
		return d.growFixed(nf)
	}
	return d.growDynamic(nf)
}

func (d *Disk) growFixed(nf Footer) error {
	size := int64(nf.CurrentSize)
	oldEnd := d.fileSize - FooterSize
	if oldEnd != int64(d.footer.CurrentSize) {
		return fmt.Errorf("vhd: cannot grow a fixed disk whose file (%d bytes) is not its size plus the footer", d.fileSize)
	}
	if _, err := d.f.WriteAt(nf.Marshal(), size); err != nil {
		return fmt.Errorf("vhd: writing footer: %w", err)
	}
	d.footer, d.fileSize = nf, size+FooterSize
	if a, ok := d.f.(Allocator); ok {
		if err := a.Allocate(oldEnd, size-oldEnd); err != nil && !errors.Is(err, errors.ErrUnsupported) {
			return fmt.Errorf("vhd: allocating grown space: %w", err)
		}
	}
	if _, err := d.f.WriteAt(make([]byte, FooterSize), oldEnd); err != nil {
		return fmt.Errorf("vhd: clearing old footer: %w", err)
	}
	return nil
}
