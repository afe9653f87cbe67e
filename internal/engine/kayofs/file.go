package kayofs

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"time"
)

// Inode block body:
//
//	[48] type  [52:56] extent count  [56:64] size  [64:72] generation
//	[72:80] mtime (unix ns)  [88:...] extents of 24 bytes:
//	logical block u64, physical block u64, length u32, flags u32
//
// Flag extUnwritten marks blocks allocated but never written: they read as
// zeros, which is how files are extended without zero-filling.
const (
	inodeExtOff  = 88
	extSize      = 24
	extUnwritten = 1
	maxExtLen    = 1 << 30
)

func errorsIs(err, target error) bool { return errors.Is(err, target) }

type extent struct {
	lblk, pblk uint64
	n          uint32
	flags      uint32
}

func (e extent) end() uint64 { return e.lblk + uint64(e.n) }

type inode struct {
	typ   uint8
	size  uint64
	gen   uint64
	mtime int64
	ext   []extent // every extent of the file, sorted (loaded from the tree)
	// Extent tree (depth > 0): root holds index records inline; tree[l]
	// are the blocks of level l (0 = leaves), in key order, as on disk.
	depth uint8
	root  []extent
	tree  [][]tnode
}

func maxExtents(bs int) int { return (bs - inodeExtOff) / extSize }

// decodeInode validates an inode body (the block header is checked by the
// caller). Depth 0: sorted, non-overlapping, non-empty extents inline.
// Depth 1..maxDepth: index records of the tree's top level (see tree.go);
// the caller loads the tree.
func decodeInode(b []byte) (*inode, error) {
	le := binary.LittleEndian
	in := &inode{typ: b[48], depth: b[49], size: le.Uint64(b[56:]), gen: le.Uint64(b[64:]), mtime: int64(le.Uint64(b[72:]))}
	n := int(le.Uint32(b[52:]))
	if in.typ > typeDir {
		return nil, fmt.Errorf("inode type %d", in.typ)
	}
	if n > maxExtents(len(b)) {
		return nil, fmt.Errorf("%d extents (max %d)", n, maxExtents(len(b)))
	}
	if in.size > 1<<62 {
		return nil, fmt.Errorf("size %d", in.size)
	}
	if b[50] != 0 || b[51] != 0 {
		return nil, fmt.Errorf("reserved bytes set")
	}
	if in.depth > maxDepth || in.depth > 0 && n < 1 {
		return nil, fmt.Errorf("extent tree depth %d with %d root records", in.depth, n)
	}
	if in.typ != typeFile && (n != 0 || in.size != 0 || in.depth != 0) {
		return nil, fmt.Errorf("type %d inode with %d extents and size %d", in.typ, n, in.size)
	}
	recs, err := decodeRecords(b[inodeExtOff:], n, in.depth > 0, len(b))
	if err != nil {
		return nil, err
	}
	if in.depth == 0 {
		in.ext = recs
	} else {
		in.root = recs
	}
	return in, nil
}

// decodeRecords decodes n 24-byte records: extents (sorted, disjoint) or,
// when index, tree index records (keys strictly ascending, count ≥ 1).
func decodeRecords(b []byte, n int, index bool, bs int) ([]extent, error) {
	le := binary.LittleEndian
	out := make([]extent, 0, n)
	var prev uint64
	for i := 0; i < n; i++ {
		o := i * extSize
		e := extent{lblk: le.Uint64(b[o:]), pblk: le.Uint64(b[o+8:]), n: le.Uint32(b[o+16:]), flags: le.Uint32(b[o+20:])}
		if index {
			if e.n == 0 || int(e.n) > nodeCap(bs) || e.flags != 0 || e.pblk == 0 || e.pblk > 1<<50 || e.lblk > 1<<50 {
				return nil, fmt.Errorf("index record %d malformed (%d,%d,%d,%#x)", i, e.lblk, e.pblk, e.n, e.flags)
			}
			if i > 0 && e.lblk <= prev {
				return nil, fmt.Errorf("index record %d out of order", i)
			}
			prev = e.lblk
		} else {
			if e.n == 0 || e.n > maxExtLen || e.flags&^extUnwritten != 0 || e.lblk > 1<<50 || e.pblk > 1<<50 {
				return nil, fmt.Errorf("extent %d malformed (%d,%d,%d,%#x)", i, e.lblk, e.pblk, e.n, e.flags)
			}
			if i > 0 && e.lblk < prev {
				return nil, fmt.Errorf("extent %d overlaps or is out of order", i)
			}
			prev = e.end()
		}
		out = append(out, e)
	}
	return out, nil
}

func encodeRecords(b []byte, recs []extent) {
	le := binary.LittleEndian
	for i, e := range recs {
		o := i * extSize
		le.PutUint64(b[o:], e.lblk)
		le.PutUint64(b[o+8:], e.pblk)
		le.PutUint32(b[o+16:], e.n)
		le.PutUint32(b[o+20:], e.flags)
	}
}

func encodeInode(b []byte, in *inode) {
	clear(b[blkHdrSize:])
	le := binary.LittleEndian
	b[48] = in.typ
	b[49] = in.depth
	recs := in.ext
	if in.depth > 0 {
		recs = in.root
	}
	le.PutUint32(b[52:], uint32(len(recs)))
	le.PutUint64(b[56:], in.size)
	le.PutUint64(b[64:], in.gen)
	le.PutUint64(b[72:], uint64(in.mtime))
	encodeRecords(b[inodeExtOff:], recs)
}

func (t *txn) inode(ino uint32) (*inode, error) {
	blk := t.v.sbl().inodeBlock(ino)
	dirty := t.blocks[blk] != nil && t.blocks[blk].dirty
	b, fresh, err := t.get(blk, tInode)
	if err != nil {
		return nil, err
	}
	if fresh {
		return &inode{}, nil
	}
	in, err := decodeInode(b)
	if err != nil {
		return nil, fmt.Errorf("%w: inode %d (block %d): %v", ErrCorrupt, ino, blk, err)
	}
	if in.depth > 0 {
		if err := t.loadTree(ino, in, blockGen(b), !dirty); err != nil {
			return nil, err
		}
	}
	return in, nil
}

func (t *txn) putInode(ino uint32, in *inode) error {
	in.ext = normalize(in.ext)
	if err := t.storeTree(ino, in); err != nil {
		return err
	}
	blk := t.v.sbl().inodeBlock(ino)
	b, _, err := t.get(blk, tInode)
	if err != nil {
		return err
	}
	encodeInode(b, in)
	t.dirty(blk)
	return nil
}

func cmpExtent(a, b extent) int { return cmp.Compare(a.lblk, b.lblk) }

// normalize sorts extents and merges neighbours.
func normalize(ext []extent) []extent {
	if !slices.IsSortedFunc(ext, cmpExtent) {
		slices.SortFunc(ext, cmpExtent)
	}
	out := ext[:0]
	for _, e := range ext {
		if l := len(out); l > 0 {
			p := &out[l-1]
			if p.end() == e.lblk && p.pblk+uint64(p.n) == e.pblk && p.flags == e.flags && uint64(p.n)+uint64(e.n) <= maxExtLen {
				p.n += e.n
				continue
			}
		}
		out = append(out, e)
	}
	return out
}

// holes lists unmapped logical ranges in [l0, l1).
func holes(ext []extent, l0, l1 uint64) []run {
	var out []run
	cur := l0
	for _, e := range ext {
		if e.end() <= cur {
			continue
		}
		if e.lblk >= l1 {
			break
		}
		if e.lblk > cur {
			out = append(out, run{cur, e.lblk - cur})
		}
		cur = max(cur, e.end())
	}
	if cur < l1 {
		out = append(out, run{cur, l1 - cur})
	}
	return out
}

// markWritten clears the unwritten flag on [l0, l1).
func markWritten(ext []extent, l0, l1 uint64) []extent {
	i := sort.Search(len(ext), func(i int) bool { return ext[i].end() > l0 })
	j := sort.Search(len(ext), func(j int) bool { return ext[j].lblk >= l1 })
	j = max(i, j)
	out := make([]extent, 0, len(ext)+2)
	out = append(out, ext[:i]...)
	for _, e := range ext[i:j] {
		if e.flags&extUnwritten == 0 || e.end() <= l0 || e.lblk >= l1 {
			out = append(out, e)
			continue
		}
		a, b := max(e.lblk, l0), min(e.end(), l1)
		if e.lblk < a {
			out = append(out, extent{e.lblk, e.pblk, uint32(a - e.lblk), e.flags})
		}
		out = append(out, extent{a, e.pblk + (a - e.lblk), uint32(b - a), 0})
		if b < e.end() {
			out = append(out, extent{b, e.pblk + (b - e.lblk), uint32(e.end() - b), e.flags})
		}
	}
	out = append(out, ext[j:]...)
	return normalize(out)
}

// cutFrom removes mappings at or beyond lb, returning the freed physical runs.
func cutFrom(ext []extent, lb uint64) ([]extent, []run) {
	var keep []extent
	var freed []run
	for _, e := range ext {
		switch {
		case e.end() <= lb:
			keep = append(keep, e)
		case e.lblk >= lb:
			freed = append(freed, run{e.pblk, uint64(e.n)})
		default:
			k := lb - e.lblk
			keep = append(keep, extent{e.lblk, e.pblk, uint32(k), e.flags})
			freed = append(freed, run{e.pblk + k, uint64(e.n) - k})
		}
	}
	return keep, freed
}

func (sb *Superblock) blocksFor(size uint64) uint64 {
	return (size + uint64(sb.BlockSize) - 1) / uint64(sb.BlockSize)
}

// shrink frees every mapping at or beyond the new size, from the end, in as
// many transactions as needed; each keeps the invariant that written
// extents lie inside the file size. Caller holds file and inode locks.
func (t *txn) shrink(ino uint32, size uint64) error {
	if err := t.v.refreshSB(); err != nil {
		return err
	}
	sb := t.v.sbl()
	bs := uint64(sb.BlockSize)
	nb := sb.blocksFor(size)
	limit := int(sb.JournalBlocks) - 4 - 4 - treeSlack // room for inode, entries, namespace header, tree
	in, err := t.inode(ino)
	if err != nil {
		return err
	}
	if size%bs != 0 && size < in.size {
		// zero the tail of the last block so a later extension reads zeros
		if p, ok := mapBlock(in.ext, size/bs); ok && p.flags == 0 {
			z := make([]byte, bs-size%bs)
			if _, err := t.v.dev.WriteAt(z, int64(p.pblk*bs+size%bs)); err != nil {
				return err
			}
		}
	}
	for {
		in, err := t.inode(ino)
		if err != nil {
			return err
		}
		keep := in.ext
		var freed []run
		for len(keep) > 0 && len(in.ext)-len(keep) < nodeCap(sb.bs()) {
			last := keep[len(keep)-1]
			if last.end() <= nb {
				break
			}
			k2, f := cutFrom(keep, max(nb, last.lblk))
			try := append(append([]run(nil), freed...), f...)
			if sb.metaBlocksFor(try) > limit {
				if len(freed) > 0 {
					break
				}
				// one extent spanning too many bitmap blocks: free its tail
				l := min(uint64(last.n), sb.bitsPerBitmap()*uint64(limit-2))
				k2, try = cutFrom(keep, max(nb, last.end()-l))
			}
			keep, freed = k2, try
		}
		done := len(keep) == 0 || keep[len(keep)-1].end() <= nb
		newSize := size
		if !done {
			newSize = min(in.size, max(size, lastWrittenEnd(keep)*bs))
		}
		if len(freed) > 0 {
			if err := t.free(freed); err != nil {
				return err
			}
		}
		in.ext = keep
		in.size = min(in.size, newSize)
		in.mtime = time.Now().UnixNano()
		if err := t.putInode(ino, in); err != nil {
			return err
		}
		if done {
			return nil // the caller commits
		}
		if err := t.commit(); err != nil {
			return err
		}
		t.dropAGs()
	}
}

func lastWrittenEnd(ext []extent) uint64 {
	var e uint64
	for _, x := range ext {
		if x.flags == 0 {
			e = max(e, x.end())
		}
	}
	return e
}

// mapBlock finds the extent piece covering logical block lb.
func mapBlock(ext []extent, lb uint64) (extent, bool) {
	i := sort.Search(len(ext), func(i int) bool { return ext[i].end() > lb })
	if i < len(ext) && ext[i].lblk <= lb {
		e := ext[i]
		return extent{lb, e.pblk + (lb - e.lblk), uint32(e.end() - lb), e.flags}, true
	}
	return extent{}, false
}

// File is an open file on a mounted volume. It is safe for concurrent use.
type File struct {
	v    *Volume
	ino  uint32
	gen  uint64
	path string
}

// Create makes a new empty file; the parent directory must exist.
func (v *Volume) Create(path string) (*File, error) {
	ino, gen, err := v.create(path, typeFile)
	if err != nil {
		return nil, err
	}
	return &File{v: v, ino: ino, gen: gen, path: path}, nil
}

// Open opens an existing file.
func (v *Volume) Open(path string) (*File, error) {
	parts, err := splitPath(path)
	if err != nil {
		return nil, err
	}
	if err := v.live(); err != nil {
		return nil, err
	}
	t := v.newTxn()
	defer t.release()
	t.lockNSOp()
	if err := t.lock(keyNS, false); err != nil {
		return nil, err
	}
	c, err := t.loadNS()
	if err != nil {
		return nil, err
	}
	ino, e, err := t.lookupFresh(c, parts)
	if err != nil {
		return nil, err
	}
	if e.typ != typeFile {
		return nil, fmt.Errorf("%w: %s", ErrIsDir, path)
	}
	return &File{v: v, ino: ino, gen: e.gen, path: path}, nil
}

// Name returns the path the file was opened with.
func (f *File) Name() string { return f.path }

// Close releases nothing on disk; it exists for io.Closer.
func (f *File) Close() error { return nil }

// Sync flushes file data to the device.
func (f *File) Sync() error { return f.v.dev.Sync() }

// begin takes the file lock (shared unless excl) and the inode lock, and
// reads the inode, checking the handle is still current.
func (f *File) begin(fileExcl, inodeExcl bool) (*txn, *inode, error) {
	if err := f.v.live(); err != nil {
		return nil, nil, err
	}
	t := f.v.newTxn()
	if err := t.lock(keyFile(f.ino), fileExcl); err != nil {
		return nil, nil, err
	}
	if err := t.lock(keyInode(f.ino), inodeExcl); err != nil {
		t.release()
		return nil, nil, err
	}
	in, err := t.inode(f.ino)
	if err == nil && (in.typ != typeFile || in.gen != f.gen) {
		err = fmt.Errorf("%w: %s", ErrStale, f.path)
	}
	if err != nil {
		t.release()
		return nil, nil, err
	}
	return t, in, nil
}

// Stat describes the open file.
func (f *File) Stat() (FileInfo, error) {
	t, in, err := f.begin(false, false)
	if err != nil {
		return FileInfo{}, err
	}
	defer t.release()
	fi := FileInfo{Name: f.path, Ino: f.ino, Size: int64(in.size), ModTime: time.Unix(0, in.mtime)}
	for _, x := range in.ext {
		fi.Allocated += int64(x.n) * int64(f.v.sbl().BlockSize)
	}
	return fi, nil
}

// Size returns the file size.
func (f *File) Size() (int64, error) {
	fi, err := f.Stat()
	return fi.Size, err
}

// ReadAt reads file data; unwritten extents and holes read as zeros.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%w: negative offset", ErrInvalid)
	}
	t, in, err := f.begin(false, false)
	if err != nil {
		return 0, err
	}
	defer t.release()
	// Mappings of written blocks only change under the exclusive file lock,
	// which our shared file lock excludes; drop the inode lock early.
	t.drop(keyInode(f.ino))
	if uint64(off) >= in.size {
		return 0, io.EOF
	}
	n := int(min(uint64(len(p)), in.size-uint64(off)))
	if err := f.v.readMapped(in.ext, p[:n], uint64(off)); err != nil {
		return 0, err
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (v *Volume) readMapped(ext []extent, p []byte, off uint64) error {
	bs := uint64(v.sbl().BlockSize)
	for len(p) > 0 {
		lb := off / bs
		within := off % bs
		e, ok := mapBlock(ext, lb)
		var span uint64
		if ok {
			span = uint64(e.n)*bs - within
		} else {
			// hole up to the next extent
			span = uint64(len(p))
			i := sort.Search(len(ext), func(i int) bool { return ext[i].lblk > lb })
			if i < len(ext) {
				span = (ext[i].lblk-lb)*bs - within
			}
		}
		m := int(min(span, uint64(len(p))))
		if ok && e.flags == 0 {
			if _, err := v.dev.ReadAt(p[:m], int64(e.pblk*bs+within)); err != nil {
				return err
			}
		} else {
			clear(p[:m])
		}
		p, off = p[m:], off+uint64(m)
	}
	return nil
}

// writeChunk is the largest number of blocks one allocate/write/convert
// round covers.
const writeChunk = 1024

// WriteAt writes file data, allocating blocks for holes and converting
// unwritten extents. When it returns nil the data and the mapping are
// durable (the conversion transaction synced the device).
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || uint64(off)+uint64(len(p)) > 1<<50 {
		return 0, fmt.Errorf("%w: offset %d", ErrInvalid, off)
	}
	if len(p) == 0 {
		return 0, nil
	}
	bs := uint64(f.v.sbl().BlockSize)
	end := uint64(off) + uint64(len(p))
	t, in, err := f.begin(false, false)
	if err != nil {
		return 0, err
	}
	fast := end <= in.size
	for lb := uint64(off) / bs; fast && lb < (end+bs-1)/bs; {
		e, ok := mapBlock(in.ext, lb)
		if !ok || e.flags != 0 {
			fast = false
			break
		}
		lb += uint64(e.n)
	}
	if fast {
		t.drop(keyInode(f.ino))
		err := f.v.writeMapped(in.ext, p, uint64(off))
		t.release()
		if err != nil {
			return 0, err
		}
		return len(p), nil
	}
	t.release()
	t, _, err = f.begin(false, true)
	if err != nil {
		return 0, err
	}
	defer t.release()
	return t.writeAll(f.ino, p, uint64(off), true)
}

// writeAll writes p at off through writeSlow, in rounds of at most
// writeChunk blocks, each committed except, when last is false, the final
// one (the caller commits it). It returns the bytes committed.
func (t *txn) writeAll(ino uint32, p []byte, off uint64, last bool) (int, error) {
	bs := uint64(t.v.sbl().BlockSize)
	end := off + uint64(len(p))
	done := 0
	for done < len(p) {
		o := off + uint64(done)
		b0 := o / bs
		b1 := min((end+bs-1)/bs, b0+writeChunk)
		m := int(min(uint64(len(p)-done), b1*bs-o))
		if err := t.writeSlow(ino, p[done:done+m], o); err != nil {
			return done, err
		}
		if done+m < len(p) || last {
			if err := t.commit(); err != nil {
				return done, err
			}
		}
		done += m
	}
	return done, nil
}

// clusterBlocks is the allocation unit of writes into holes: 64 KiB.
func (sb *Superblock) clusterBlocks() uint64 { return max(1, 65536/uint64(sb.BlockSize)) }

// goalFor picks the physical block that would keep lblk contiguous with
// its logical neighbours, so later conversions merge extents.
func goalFor(ext []extent, lblk uint64) uint64 {
	i := sort.Search(len(ext), func(i int) bool { return ext[i].lblk > lblk })
	if i > 0 {
		e := ext[i-1]
		return e.pblk + (lblk - e.lblk)
	}
	if i < len(ext) && ext[i].pblk >= ext[i].lblk-lblk {
		return ext[i].pblk - (ext[i].lblk - lblk)
	}
	return 0
}

// mapHoles maps every hole of [l0, l1) as unwritten extents, committing as
// many transactions as needed; the caller commits the last one. Blocks
// allocated by an uncommitted transaction are free on disk until it
// commits, so data written into them first exposes nothing after a crash.
func (t *txn) mapHoles(ino uint32, l0, l1 uint64) error {
	for {
		in, err := t.inode(ino)
		if err != nil {
			return err
		}
		hs := holes(in.ext, l0, l1)
		if len(hs) == 0 {
			return nil
		}
		h := hs[0]
		runs, err := t.allocate(h.n, goalFor(in.ext, h.start), 8)
		if err != nil {
			return err
		}
		l := h.start
		for _, r := range runs {
			for r.n > 0 {
				n := min(r.n, maxExtLen)
				in.ext = append(in.ext, extent{l, r.start, uint32(n), extUnwritten})
				l, r.start, r.n = l+n, r.start+n, r.n-n
			}
		}
		if err := t.putInode(ino, in); err != nil {
			return err
		}
		if in.depth == 0 && len(holes(in.ext, l0, l1)) == 0 && t.room() >= 2*treeSlack+4 {
			// a small file's last round: the caller's commit (which writes
			// into the blocks and marks them written) carries it too
			return nil
		}
		if err := t.commit(); err != nil {
			return err
		}
		t.dropAGs()
	}
}

// writeSlow handles one chunk under the exclusive inode lock. Holes are
// allocated in whole clusters; blocks that become written are either
// already written (only p's bytes are written into them, never a
// read-modify-write, so concurrent fast-path writers lose nothing) or were
// unwritten (written in full: zeros around p).
// The caller commits.
func (t *txn) writeSlow(ino uint32, p []byte, off uint64) error {
	sb := t.v.sbl()
	bs := uint64(sb.BlockSize)
	end := off + uint64(len(p))
	b0, b1 := off/bs, (end+bs-1)/bs
	cl := sb.clusterBlocks()
	c0, c1 := b0/cl*cl, (b1+cl-1)/cl*cl
	if err := t.mapHoles(ino, c0, c1); err != nil {
		return err
	}
	in, err := t.inode(ino)
	if err != nil {
		return err
	}
	newSize := max(in.size, end)
	w1 := min(c1, sb.blocksFor(newSize)) // never mark blocks past EOF written
	for lb := c0; lb < w1; {
		e, ok := mapBlock(in.ext, lb)
		if !ok {
			return fmt.Errorf("kayofs: internal error: block %d unmapped after allocation", lb)
		}
		n := min(uint64(e.n), w1-lb)
		lo, hi := lb*bs, (lb+n)*bs // logical byte range of this piece
		if e.flags == 0 {
			a, z := max(lo, off), min(hi, end)
			if a < z {
				if _, err := t.v.dev.WriteAt(p[a-off:z-off], int64(e.pblk*bs+(a-lo))); err != nil {
					return err
				}
			}
		} else {
			buf := make([]byte, hi-lo)
			a, z := max(lo, off), min(hi, end)
			if a < z {
				copy(buf[a-lo:], p[a-off:z-off])
			}
			if _, err := t.v.dev.WriteAt(buf, int64(e.pblk*bs)); err != nil {
				return err
			}
		}
		lb += n
	}
	// convert to written and grow the size, durably
	in.ext = markWritten(in.ext, c0, w1)
	in.size = newSize
	in.mtime = time.Now().UnixNano()
	return t.putInode(ino, in)
}

// writeMapped writes p at logical offset off; every block must be mapped.
func (v *Volume) writeMapped(ext []extent, p []byte, off uint64) error {
	bs := uint64(v.sbl().BlockSize)
	for len(p) > 0 {
		e, ok := mapBlock(ext, off/bs)
		if !ok {
			return fmt.Errorf("kayofs: internal error: write to unmapped block %d", off/bs)
		}
		within := off % bs
		m := int(min(uint64(e.n)*bs-within, uint64(len(p))))
		if _, err := v.dev.WriteAt(p[:m], int64(e.pblk*bs+within)); err != nil {
			return err
		}
		p, off = p[m:], off+uint64(m)
	}
	return nil
}

// Allocate extends the file to size with unwritten extents (no zero-fill);
// a smaller size is a no-op. The new range reads as zeros.
func (f *File) Allocate(size int64) error {
	if size < 0 || size > 1<<50 {
		return fmt.Errorf("%w: size %d", ErrInvalid, size)
	}
	t, _, err := f.begin(false, true)
	if err != nil {
		return err
	}
	defer t.release()
	if err := t.mapHoles(f.ino, 0, f.v.sbl().blocksFor(uint64(size))); err != nil {
		return err
	}
	in, err := t.inode(f.ino)
	if err != nil {
		return err
	}
	if uint64(size) > in.size {
		in.size = uint64(size)
		in.mtime = time.Now().UnixNano()
		if err := t.putInode(f.ino, in); err != nil {
			return err
		}
	}
	return t.commit()
}

// Truncate sets the file size; shrinking frees blocks past the end, growing
// leaves a hole that reads as zeros.
func (f *File) Truncate(size int64) error {
	if size < 0 || size > 1<<50 {
		return fmt.Errorf("%w: size %d", ErrInvalid, size)
	}
	t, in, err := f.begin(true, true)
	if err != nil {
		return err
	}
	defer t.release()
	if uint64(size) == in.size {
		return nil // nothing changes (POSIX: times change with the size)
	}
	if uint64(size) > in.size {
		in.size = uint64(size)
		in.mtime = time.Now().UnixNano()
		if err := t.putInode(f.ino, in); err != nil {
			return err
		}
		return t.commit()
	}
	if err := t.shrink(f.ino, uint64(size)); err != nil {
		return err
	}
	return t.commit()
}
