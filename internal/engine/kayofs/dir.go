package kayofs

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// The namespace: a header block, a directory-entry table (one fixed-size
// entry per inode number, packed into blocks) and the inode table (one
// block per inode). Entry ino holds (type, parent inode, name, generation);
// a directory is the set of entries naming it as parent. Rename rewrites one
// entry, so it is atomic by construction. Every namespace change bumps the
// header's generation, which lets mounts cache the tree and revalidate it
// with one block read.
const (
	direntSize = 272
	typeFree   = 0
	typeFile   = 1
	typeDir    = 2
)

type dirent struct {
	typ    uint8
	parent uint32
	gen    uint64
	name   string
}

type nsHeader struct {
	hw      uint32 // every ino ≥ hw is free
	gen     uint64 // namespace generation
	nextGen uint64 // next inode generation
	files   uint32
	dirs    uint32
}

func decodeNSHeader(b []byte, inodes uint32) (nsHeader, error) {
	le := binary.LittleEndian
	h := nsHeader{hw: le.Uint32(b[48:]), gen: le.Uint64(b[56:]), nextGen: le.Uint64(b[64:]),
		files: le.Uint32(b[72:]), dirs: le.Uint32(b[76:])}
	if h.hw < rootIno+1 || h.hw > inodes || h.dirs < 1 || uint64(h.files)+uint64(h.dirs) > uint64(h.hw) {
		return h, fmt.Errorf("%w: namespace header: high water %d, %d files, %d dirs (inode table %d)", ErrCorrupt, h.hw, h.files, h.dirs, inodes)
	}
	return h, nil
}

func encodeNSHeader(b []byte, h nsHeader) {
	le := binary.LittleEndian
	le.PutUint32(b[48:], h.hw)
	le.PutUint64(b[56:], h.gen)
	le.PutUint64(b[64:], h.nextGen)
	le.PutUint32(b[72:], h.files)
	le.PutUint32(b[76:], h.dirs)
}

func validName(n string) error {
	if n == "" || n == "." || n == ".." || len(n) > MaxNameLen || !utf8.ValidString(n) ||
		strings.ContainsAny(n, "/\x00") {
		return fmt.Errorf("%w: bad name %q", ErrInvalidPath, n)
	}
	return nil
}

// decodeDirents decodes the entries of one directory-entry block. Free
// entries must be all zero.
func decodeDirents(b []byte, per int) ([]dirent, error) {
	out := make([]dirent, per)
	le := binary.LittleEndian
	for i := 0; i < per; i++ {
		e := b[blkHdrSize+i*direntSize : blkHdrSize+(i+1)*direntSize]
		typ := e[0]
		if typ == typeFree {
			if !allZero(e) {
				return nil, fmt.Errorf("entry %d: free entry not zeroed", i)
			}
			continue
		}
		if typ != typeFile && typ != typeDir {
			return nil, fmt.Errorf("entry %d: type %d", i, typ)
		}
		nl := int(e[1])
		if nl == 0 || 16+nl > direntSize {
			return nil, fmt.Errorf("entry %d: name length %d", i, nl)
		}
		name := string(e[16 : 16+nl])
		if err := validName(name); err != nil {
			return nil, fmt.Errorf("entry %d: %v", i, err)
		}
		if !allZero(e[16+nl:]) || e[2] != 0 || e[3] != 0 {
			return nil, fmt.Errorf("entry %d: padding not zeroed", i)
		}
		out[i] = dirent{typ: typ, parent: le.Uint32(e[4:]), gen: le.Uint64(e[8:]), name: name}
	}
	return out, nil
}

// allZero: every byte of b is 0 (a directory table's free entries and
// padding, checked at every reload: bytes, not runes).
func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func encodeDirent(b []byte, idx int, d dirent) {
	e := b[blkHdrSize+idx*direntSize : blkHdrSize+(idx+1)*direntSize]
	clear(e)
	if d.typ == typeFree {
		return
	}
	e[0] = d.typ
	e[1] = byte(len(d.name))
	binary.LittleEndian.PutUint32(e[4:], d.parent)
	binary.LittleEndian.PutUint64(e[8:], d.gen)
	copy(e[16:], d.name)
}

// splitPath validates a volume path like "WEB01/WEB01.vhd".
func splitPath(p string) ([]string, error) {
	if p == "" || strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("%w: %q: paths are relative to the volume root and not empty", ErrInvalidPath, p)
	}
	parts := strings.Split(p, "/")
	for _, e := range parts {
		if e == "" || e == "." || e == ".." {
			return nil, fmt.Errorf("%w: %q: empty, \".\" or \"..\" element", ErrInvalidPath, p)
		}
		if err := validName(e); err != nil {
			return nil, fmt.Errorf("%w: %q: %v", ErrInvalidPath, p, err)
		}
	}
	return parts, nil
}

// lookup resolves path elements to an inode number.
func (c *nsCache) lookup(parts []string) (uint32, dirent, error) {
	ino := uint32(rootIno)
	e := c.ents[rootIno]
	for i, p := range parts {
		if e.typ != typeDir {
			return 0, dirent{}, fmt.Errorf("%w: %s", ErrNotDir, strings.Join(parts[:i], "/"))
		}
		next, ok := c.children[ino][p]
		if !ok {
			return 0, dirent{}, fmt.Errorf("%w: %s", ErrNotExist, strings.Join(parts[:i+1], "/"))
		}
		ino, e = next, c.ents[next]
	}
	return ino, e, nil
}

// freeIno picks a free inode number below limit and not in taken,
// preferring the runs of slot's lock domain.
func (c *nsCache) freeIno(limit uint32, slot int, taken map[uint32]bool) (uint32, bool) {
	free := func(ino uint32) bool {
		_, used := c.ents[ino]
		return ino > rootIno && ino < limit && !used && !taken[ino]
	}
	// This slot's runs first (their lock domain is the slot's: LockDomain),
	// up to one round of runs past the high water mark.
	end := uint64(c.hdr.hw) + MaxSlots*inoChunk
	for base := uint64(slot%MaxSlots) * inoChunk; base < end && base < uint64(limit); base += MaxSlots * inoChunk {
		for ino := uint32(base); ino < uint32(base)+inoChunk; ino++ {
			if free(ino) {
				return ino, true
			}
		}
	}
	for ino := uint32(rootIno + 1); ino < limit; ino++ {
		if free(ino) {
			return ino, true
		}
	}
	return 0, false
}

// putDirent writes entry ino inside the transaction.
func (t *txn) putDirent(ino uint32, d dirent) error {
	blk, idx := t.v.sbl().direntBlock(ino)
	b, _, err := t.get(blk, tDirent)
	if err != nil {
		return err
	}
	encodeDirent(b, idx, d)
	t.dirty(blk)
	if d.typ != typeFree {
		t.markClassUsed(ino)
	}
	return nil
}

// putNSHeader writes h and, on version 5, the classes in use at its
// generation (nsclasses.go).
func (t *txn) putNSHeader(h nsHeader) {
	sb := t.v.sbl()
	blk := sb.nsBlock()
	encodeNSHeader(t.blocks[blk].buf, h)
	if sb.DirDomains() {
		t.stampNS(t.blocks[blk].buf, h.gen)
	}
	t.dirty(blk)
}

// FileInfo describes a file or directory.
type FileInfo struct {
	Name      string
	Ino       uint32
	IsDir     bool
	Size      int64
	Allocated int64 // bytes of blocks mapped (written or unwritten)
	ModTime   time.Time
}

func (v *Volume) create(path string, typ uint8) (uint32, uint64, error) {
	if parts, err := splitPath(path); err == nil && typ == typeFile {
		if ino, gen, ok, err := v.createFast(parts); ok {
			return ino, gen, err
		}
	}
	t, c, parts, err := v.nsTxnPath(path)
	if err != nil {
		return 0, 0, err
	}
	defer t.release()
	pino, pe, err := c.lookup(parts[:len(parts)-1])
	if err != nil {
		return 0, 0, err
	}
	if pe.typ != typeDir {
		return 0, 0, fmt.Errorf("%w: %s", ErrNotDir, strings.Join(parts[:len(parts)-1], "/"))
	}
	name := parts[len(parts)-1]
	if _, ok := c.children[pino][name]; ok {
		return 0, 0, fmt.Errorf("%w: %s", ErrExist, path)
	}
	ino, ok := c.freeIno(v.sbl().InodeCount, v.prefClass(typ, pino), nil)
	if !ok {
		return 0, 0, ErrNoInodes
	}
	if err := t.lock(keyInode(ino), true); err != nil {
		return 0, 0, err
	}
	h := c.hdr
	h.gen++
	gen, err := t.addEntry(&h, ino, typ, pino, name)
	if err != nil {
		return 0, 0, err
	}
	t.putNSHeader(h)
	if err := t.commit(); err != nil {
		return 0, 0, err
	}
	t.nsCommitted(c, h)
	return ino, gen, nil
}

// Mkdir creates a directory; its parent must exist.
func (v *Volume) Mkdir(path string) error {
	_, _, err := v.create(path, typeDir)
	return err
}

// MkdirAll creates a directory and any missing parents.
func (v *Volume) MkdirAll(path string) error {
	parts, err := splitPath(path)
	if err != nil {
		return err
	}
	for i := range parts {
		err := v.Mkdir(strings.Join(parts[:i+1], "/"))
		if err != nil && !errorsIs(err, ErrExist) {
			return err
		}
	}
	return nil
}

// nsTxn starts a transaction that holds the namespace lock exclusively,
// with the namespace loaded, on a live mount: the start of every
// namespace change. The caller releases the transaction.
func (v *Volume) nsTxn() (*txn, *nsCache, error) {
	t, err := v.nsLocked()
	if err != nil {
		return nil, nil, err
	}
	// version 5: other hosts' fast changes left the generation as it was
	c, err := t.loadNSx(t.v.sbl().DirDomains())
	if err != nil {
		t.release()
		return nil, nil, err
	}
	return t, c, nil
}

// nsLocked starts a transaction holding the namespace lock exclusively
// (and every directory domain on version 5), on a live mount.
func (v *Volume) nsLocked() (*txn, error) {
	if err := v.live(); err != nil {
		return nil, err
	}
	t := v.newTxn()
	t.lockNSOp()
	if err := t.lockNSAll(); err != nil {
		t.release()
		return nil, err
	}
	return t, nil
}

// nsTxnNew is nsTxn for CreateFiles: a directory in the directory at
// parent and n files in it (loadNSNew).
func (v *Volume) nsTxnNew(parent []string, n int) (*txn, *nsCache, error) {
	t, err := v.nsLocked()
	if err != nil {
		return nil, nil, err
	}
	c, err := t.loadNSNew(parent, n)
	if err != nil {
		t.release()
		return nil, nil, err
	}
	return t, c, nil
}

// addEntry writes a new entry (directory entry and inode) at the free
// inode ino, counting it in the namespace header h.
func (t *txn) addEntry(h *nsHeader, ino uint32, typ uint8, parent uint32, name string) (uint64, error) {
	gen := h.nextGen
	h.nextGen++
	h.hw = hwAfter(t.v.sbl(), h.hw, ino)
	if typ == typeDir {
		h.dirs++
	} else {
		countFile(t.v.sbl(), h, 1)
	}
	if err := t.putDirent(ino, dirent{typ: typ, parent: parent, gen: gen, name: name}); err != nil {
		return 0, err
	}
	return gen, t.putInode(ino, &inode{typ: typ, gen: gen, mtime: time.Now().UnixNano()})
}

// freeEntry clears ino's directory entry and inode (its blocks are freed
// already).
func (t *txn) freeEntry(ino uint32) error {
	if err := t.putDirent(ino, dirent{}); err != nil {
		return err
	}
	return t.putInode(ino, &inode{})
}

// nsTxnPath is nsTxn for a change at path, split into its parts first
// (a bad path starts nothing).
func (v *Volume) nsTxnPath(path string) (*txn, *nsCache, []string, error) {
	parts, err := splitPath(path)
	if err != nil {
		return nil, nil, nil, err
	}
	t, c, err := v.nsTxn()
	if err != nil {
		return nil, nil, nil, err
	}
	return t, c, parts, nil
}

// Remove deletes a file (freeing its blocks) or an empty directory.
func (v *Volume) Remove(path string) error {
	if parts, err := splitPath(path); err == nil {
		if ok, err := v.removeFast(parts); ok {
			return err
		}
	}
	t, c, parts, err := v.nsTxnPath(path)
	if err != nil {
		return err
	}
	defer t.release()
	ino, e, err := c.lookup(parts)
	if err != nil {
		return err
	}
	h := c.hdr
	if e.typ == typeDir {
		if len(c.children[ino]) > 0 {
			return fmt.Errorf("%w: %s", ErrNotEmpty, path)
		}
		if err := t.lock(keyInode(ino), true); err != nil {
			return err
		}
		h.dirs--
	} else {
		if err := t.removeData(ino); err != nil {
			return err
		}
		countFile(t.v.sbl(), &h, -1)
	}
	if err := t.freeEntry(ino); err != nil {
		return err
	}
	h.gen++
	t.putNSHeader(h)
	if err := t.commit(); err != nil {
		return err
	}
	t.nsCommitted(c, h)
	return nil
}

// removeData locks a file exclusively and frees all its blocks (in as many
// transactions as needed); the caller then clears the inode.
func (t *txn) removeData(ino uint32) error {
	if err := t.lock(keyFile(ino), true); err != nil {
		return err
	}
	if err := t.lock(keyInode(ino), true); err != nil {
		return err
	}
	return t.shrink(ino, 0)
}

// Rename moves a file or directory; an existing file at the target is
// replaced (its blocks freed) in the same final transaction.
func (v *Volume) Rename(oldPath, newPath string) error {
	op, err := splitPath(oldPath)
	if err != nil {
		return err
	}
	np, err := splitPath(newPath)
	if err != nil {
		return err
	}
	t, c, err := v.nsTxn()
	if err != nil {
		return err
	}
	defer t.release()
	sino, se, err := c.lookup(op)
	if err != nil {
		return err
	}
	pino, pe, err := c.lookup(np[:len(np)-1])
	if err != nil {
		return err
	}
	if pe.typ != typeDir {
		return fmt.Errorf("%w: %s", ErrNotDir, strings.Join(np[:len(np)-1], "/"))
	}
	if se.typ == typeDir {
		for a := pino; ; a = c.ents[a].parent {
			if a == sino {
				return fmt.Errorf("%w: cannot move %s inside itself", ErrInvalidPath, oldPath)
			}
			if a == rootIno {
				break
			}
		}
	}
	name := np[len(np)-1]
	h := c.hdr
	if tino, ok := c.children[pino][name]; ok {
		if tino == sino {
			return nil
		}
		te := c.ents[tino]
		if te.typ == typeDir {
			return fmt.Errorf("%w: %s", ErrIsDir, newPath)
		}
		if se.typ == typeDir {
			return fmt.Errorf("%w: cannot replace file %s with a directory", ErrExist, newPath)
		}
		if err := t.removeData(tino); err != nil {
			return err
		}
		if err := t.freeEntry(tino); err != nil {
			return err
		}
		countFile(t.v.sbl(), &h, -1)
	}
	se.parent, se.name = pino, name
	if err := t.putDirent(sino, se); err != nil {
		return err
	}
	h.gen++
	t.putNSHeader(h)
	if err := t.commit(); err != nil {
		return err
	}
	t.nsCommitted(c, h)
	return nil
}

// Stat describes the file or directory at path ("" or "." is the root).
func (v *Volume) Stat(path string) (FileInfo, error) {
	if err := v.live(); err != nil {
		return FileInfo{}, err
	}
	var parts []string
	if path != "" && path != "." {
		var err error
		if parts, err = splitPath(path); err != nil {
			return FileInfo{}, err
		}
	}
	t := v.newTxn()
	defer t.release()
	t.lockNSOp()
	if err := t.lock(keyNS, false); err != nil {
		return FileInfo{}, err
	}
	c, err := t.loadNS()
	if err != nil {
		return FileInfo{}, err
	}
	ino, e, err := t.lookupFresh(c, parts)
	if err != nil {
		return FileInfo{}, err
	}
	return t.statIno(ino, e)
}

func (t *txn) statIno(ino uint32, e dirent) (FileInfo, error) {
	if err := t.lock(keyInode(ino), false); err != nil {
		return FileInfo{}, err
	}
	defer t.drop(keyInode(ino))
	in, err := t.inode(ino)
	if err != nil {
		return FileInfo{}, err
	}
	delete(t.blocks, t.v.sbl().inodeBlock(ino))
	fi := FileInfo{Name: e.name, Ino: ino, IsDir: e.typ == typeDir, Size: int64(in.size), ModTime: time.Unix(0, in.mtime)}
	if ino == rootIno {
		fi.Name = ""
	}
	for _, x := range in.ext {
		fi.Allocated += int64(x.n) * int64(t.v.sbl().BlockSize)
	}
	return fi, nil
}

// ReadDir lists a directory ("" or "." is the root), sorted by name.
func (v *Volume) ReadDir(path string) ([]FileInfo, error) {
	if err := v.live(); err != nil {
		return nil, err
	}
	var parts []string
	if path != "" && path != "." {
		var err error
		if parts, err = splitPath(path); err != nil {
			return nil, err
		}
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
	if e.typ != typeDir {
		return nil, fmt.Errorf("%w: %s", ErrNotDir, path)
	}
	if err := t.dirFresh(c, ino); err != nil {
		return nil, err
	}
	var out []FileInfo
	for _, ci := range c.children[ino] {
		fi, err := t.statIno(ci, c.ents[ci])
		if err != nil {
			return nil, err
		}
		out = append(out, fi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
