package vhd

import (
	"fmt"
	"io"
	"time"
)

// ChildOptions say what CreateChild makes.
type ChildOptions struct {
	// ParentPath is the parent's path relative to the child's directory,
	// Windows style (`..\templates\base.vhd`; `/` is accepted and
	// stored as `\`). It is stored in a W2ru parent locator and as the
	// parent unicode name, and passed to the opener.
	ParentPath string
	// ParentAbsPath, if set, is also stored in a W2ku (absolute) locator,
	// e.g. `C:\ClusterStorage\Volume1\templates\base.vhd`, as Hyper-V
	// writes both. Only the relative locator is used to open the parent.
	ParentAbsPath string
	// BlockSize as in Options; 0 means the parent's block size if it is
	// dynamic or differencing, else DefaultBlockSize.
	BlockSize int64
	// UUID of the child; the zero value means a random one.
	UUID UUID
	// Time is the creation time written in the child's footer.
	Time time.Time
}

// OpenChain opens the VHD in f like Open and, for a differencing disk,
// its parents through open (recursively, so chains work), checking each
// parent's footer UUID against the UUID its child records. A parent that
// cannot be opened or does not match is a *ParentError naming its path.
// Parents are only read. Close the returned disk to close them.
func OpenChain(f File, fileSize int64, open ParentOpener) (*Disk, error) {
	d, err := openImage(f, fileSize)
	if err != nil {
		return nil, err
	}
	if d.footer.DiskType == Differencing {
		if err := d.openParent(open, "", 0); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// CreateChild writes into f (discarding its contents) a new, empty
// differencing disk whose parent is opts.ParentPath, opened through
// open (which resolves the path relative to the child's directory).
// The child has the parent's size and geometry; it reads as the parent
// until written. Writes go only to the child: a written sector's bit is
// set in its block's bitmap, and a partly written sector is first
// completed from the parent (copy on write per sector). The cost does
// not depend on the parent's size beyond its BAT (4 bytes per block).
//
// Layout: footer copy at 0, header at 512 (parent UUID and timestamp
// from the parent's footer, parent unicode name), BAT at 1536, the
// W2ru (then W2ku) locator's UTF-16LE path, each padded to a sector,
// and the footer.
func CreateChild(f File, open ParentOpener, opts ChildOptions) (*Disk, error) {
	rel, err := normRel(opts.ParentPath)
	if err != nil {
		return nil, err
	}
	path := cleanWin(rel)
	if open == nil {
		return nil, &ParentError{Path: path, Err: ErrParentRequired}
	}
	pf, psize, err := open(path)
	if err != nil {
		return nil, &ParentError{Path: path, Err: err}
	}
	parent, err := openImage(pf, psize)
	if err == nil && parent.footer.DiskType == Differencing {
		err = parent.openParent(open, path, 1)
	} else if err != nil {
		err = &ParentError{Path: path, Err: err}
	}
	if err != nil {
		if c, ok := pf.(io.Closer); ok {
			c.Close()
		}
		return nil, err
	}
	d, err := writeChild(f, parent, rel, opts)
	if err == nil {
		d.parentPath = path
	}
	if err != nil {
		parent.closeSelf()
		return nil, err
	}
	return d, nil
}

func writeChild(f File, parent *Disk, rel string, opts ChildOptions) (*Disk, error) {
	pft := parent.Footer()
	size := int64(pft.CurrentSize)
	bs := opts.BlockSize
	if bs == 0 {
		bs = parent.BlockSize()
	}
	if bs == 0 {
		bs = DefaultBlockSize
	}
	if bs < SectorSize || bs > 256<<20 || bs&(bs-1) != 0 {
		return nil, fmt.Errorf("vhd: block size %d is not a power of two between 512 bytes and 256 MiB", bs)
	}
	u := opts.UUID
	if u == (UUID{}) {
		var err error
		if u, err = NewUUID(); err != nil {
			return nil, err
		}
	}
	ft := Footer{
		Features:       featureReserve,
		Version:        formatVersion,
		DataOffset:     FooterSize,
		Timestamp:      Timestamp(opts.Time),
		CreatorVersion: CreatorVersion,
		OriginalSize:   uint64(size),
		CurrentSize:    uint64(size),
		Geometry:       pft.Geometry,
		DiskType:       Differencing,
		UUID:           u,
	}
	copy(ft.CreatorApp[:], CreatorApp)
	copy(ft.CreatorHostOS[:], CreatorHostOS)
	entries := uint32((size + bs - 1) / bs)
	hdr := &Header{
		DataOffset:      fixedDataOff,
		TableOffset:     FooterSize + HeaderSize,
		Version:         formatVersion,
		MaxTableEntries: entries,
		BlockSize:       uint32(bs),
		ParentUUID:      pft.UUID,
		ParentTimestamp: pft.Timestamp,
	}
	if err := hdr.setParentName(rel); err != nil {
		return nil, err
	}
	pos := FooterSize + HeaderSize + batBytes(entries)
	var locData [][]byte
	for i, l := range []struct{ code, path string }{{PlatformW2ru, rel}, {PlatformW2ku, opts.ParentAbsPath}} {
		if l.path == "" {
			continue
		}
		b := utf16LE(l.path)
		if len(b) > maxLocatorData {
			return nil, fmt.Errorf("vhd: parent path %q is too long", l.path)
		}
		space := (int64(len(b)) + SectorSize - 1) / SectorSize * SectorSize
		var loc Locator
		copy(loc.Code[:], l.code)
		loc.Space, loc.Length, loc.Offset = uint32(space), uint32(len(b)), uint64(pos)
		hdr.setLocator(i, loc)
		locData = append(locData, append(b, make([]byte, space-int64(len(b)))...))
		pos += space
	}
	if err := f.Truncate(0); err != nil {
		return nil, fmt.Errorf("vhd: truncating file: %w", err)
	}
	d, err := writeSparse(f, ft, hdr, locData, "differencing")
	if err != nil {
		return nil, err
	}
	d.parent, d.parentPath = parent, rel
	return d, nil
}

// closeSelf closes d's own file and its parents' when d was opened by a
// ParentOpener.
func (d *Disk) closeSelf() {
	_ = d.Close()
	if c, ok := d.f.(io.Closer); ok {
		c.Close()
	}
}

// readBelow fills p, the virtual-disk bytes at off that d's blocks do
// not hold, from the parent (zeros past the parent's end), or with zeros
// for a disk without a parent.
func (d *Disk) readBelow(p []byte, off int64) error {
	if d.parent == nil {
		clear(p)
		return nil
	}
	n, err := d.parent.ReadAt(p, off)
	if err != nil && err != io.EOF {
		return fmt.Errorf("vhd: reading parent %q: %w", d.parentPath, err)
	}
	clear(p[max(n, 0):])
	return nil
}

// writeChildAt writes p at off into a differencing disk (d.mu held
// exclusively): a sector only partly covered by p and not yet the
// child's is first completed from the merged view, so the bitmap bit it
// gets set covers correct bytes.
func (d *Disk) writeChildAt(p []byte, off int64) error {
	start := off / SectorSize * SectorSize
	end := (off + int64(len(p)) + SectorSize - 1) / SectorSize * SectorSize
	if start == off && end == off+int64(len(p)) {
		return d.writeDynamic(p, off)
	}
	buf := make([]byte, end-start)
	if err := d.readDynamic(buf[:SectorSize], start); err != nil {
		return err
	}
	if end-start > SectorSize {
		if err := d.readDynamic(buf[len(buf)-SectorSize:], end-SectorSize); err != nil {
			return err
		}
	}
	copy(buf[off-start:], p)
	return d.writeDynamic(buf, start)
}

// OwnSectors is the number of sectors a dynamic or differencing disk
// holds in its own blocks (bitmap bits set): for a child, the sectors
// written since it was created.
func (d *Disk) OwnSectors() (int64, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.hdr == nil {
		return int64(d.footer.CurrentSize) / SectorSize, nil
	}
	var n int64
	per := int64(d.hdr.BlockSize) / SectorSize
	for i, e := range d.bat {
		if e == unallocated {
			continue
		}
		bm, err := d.bitmap(uint32(i))
		if err != nil {
			return 0, err
		}
		for s := int64(0); s < per; s++ {
			if bitSet(bm, s) {
				n++
			}
		}
	}
	return n, nil
}
