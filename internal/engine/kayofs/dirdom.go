package kayofs

import (
	"fmt"
	"strings"
	"time"
)

// Directory domains (format version 5). Before, every create and remove
// took the namespace lock exclusively, so hosts working in their own
// directories still took turns on it. On a version-5 volume a file is
// created or removed in directory P under P's directory domain alone:
// keyDir(dirClass(P)), the lock of P's run of inode numbers (LockDomain
// maps it, and every inode and file key of those runs, onto one cluster
// lock). The rules that make that safe:
//
//   - A file created that way takes an inode number in the runs of P's
//     class below the high-water mark, and its entry lives in those runs'
//     own directory-entry blocks (Superblock.direntRunBlocks: no block
//     holds entries of two classes). So a fast change writes only blocks of
//     P's class and the file's inode, and no namespace header.
//   - Everything else (directories, renames, RemoveDir, CreateFiles, a
//     create that finds no free number, a file outside its directory's
//     class) takes the namespace lock and then every directory domain, in
//     ascending order, before any inode, file or group lock; it reloads
//     the whole table and bumps the header's generation as before.
//   - A fast change first reads the header without a lock, takes the
//     domain, and reads the header again: the same generation means no
//     namespace change committed in between, so the path it resolved in
//     the cached view still leads to P. It then re-reads P's class's
//     blocks, which only holders of that domain write.
//   - Readers (Stat, ReadDir, Open) take the namespace lock shared as
//     before, then the domain of the directory they look into, re-read its
//     blocks and drop it before they lock an inode.
//
// Lock order: namespace → directory domains (ascending) → file → inode →
// groups. A fast change holds one directory domain and the inode and file
// keys of its own class (the same cluster lock), so it never waits for
// another domain; only the namespace holder takes more than one.
//
// The header's file count is not kept on version 5 (0): fast changes do
// not write the header. Inode generations of fast creates are
// 1<<63 | slot<<56 | mount generation (24 bits)<<32 | counter, unique per
// inode number without a shared counter.

// keyDir is directory class x's lock key.
func keyDir(x uint32) int64 { return keyDomainBase + int64(x) }

// dirClass: the class (run of inode numbers modulo MaxSlots) of ino.
func dirClass(ino uint32) uint32 { return ino / inoChunk % MaxSlots }

// lockNSOp takes the mount's namespace-operation mutex on a version-5
// volume (released by release).
func (t *txn) lockNSOp() {
	if t.v.sbl().DirDomains() && !t.nsOp {
		t.v.nsv.op.Lock()
		t.nsOp = true
	}
}

// lockNSAll takes the namespace lock exclusively and, on a version-5
// volume, every directory domain after it, ascending, as one run
// (lockRunExcl: one dead-node check for the namespace lock and all 64).
func (t *txn) lockNSAll() error {
	if !t.v.sbl().DirDomains() {
		return t.lock(keyNS, true)
	}
	lk := t.v.lk
	if err := lk.lockExcl(keyNS, false); err != nil {
		return err
	}
	if err := lk.lockRunExcl(keyDir(0), MaxSlots); err != nil {
		lk.unlock(keyNS, true)
		return err
	}
	t.held = append(t.held, heldLock{key: keyNS, excl: true}, heldLock{key: keyDir(0), excl: true, n: MaxSlots})
	return nil
}

// nsGenNow reads the namespace header's generation without a lock; a torn
// or unreadable header reads as not current (false).
func (v *Volume) nsGenNow() (uint64, bool) {
	sb := v.sbl()
	b, err := readBlock(v.dev, sb.bs(), sb.nsBlock())
	if err != nil {
		return 0, false
	}
	if st, _ := checkBlock(b, tNSHeader, sb.UUID, sb.nsBlock()); st != blockValid {
		return 0, false
	}
	h, err := decodeNSHeader(b, sb.InodeCount)
	if err != nil {
		return 0, false
	}
	return h.gen, true
}

// refreshClass re-reads the directory-entry blocks of class x's runs below
// the high-water mark into c (the caller holds keyDir(x) and nsOp).
func (v *Volume) refreshClass(c *nsCache, x uint32) error {
	sb := v.sbl()
	rb := sb.direntRunBlocks()
	bs := uint64(sb.bs())
	buf := make([]byte, rb*bs)
	v.nsv.mu.Lock()
	defer v.nsv.mu.Unlock()
	for run := uint64(x); run*inoChunk < uint64(c.hdr.hw); run += MaxSlots {
		first := run * rb
		if _, err := v.dev.ReadAt(buf, int64((sb.direntStart()+first)*bs)); err != nil {
			return fmt.Errorf("kayofs: reading directory entries: %w", err)
		}
		for k := uint64(0); k < rb; k++ {
			if err := c.setBlock(sb, first+k, buf[k*bs:(k+1)*bs]); err != nil {
				v.nsv.c = nil
				return err
			}
		}
	}
	return nil
}

// dirFresh brings c's entries of directory dir's class up to date for a
// reader: it takes dir's domain, re-reads the blocks, and drops it.
func (t *txn) dirFresh(c *nsCache, dir uint32) error {
	if !t.v.sbl().DirDomains() {
		return nil
	}
	k := keyDir(dirClass(dir))
	if err := t.lock(k, true); err != nil {
		return err
	}
	defer t.drop(k)
	return t.v.refreshClass(c, dirClass(dir))
}

// fastStart begins a fast change in the directory at parts: the view,
// the directory's domain held and its class re-read. ok false: take the
// namespace path (no such directory, or the namespace keeps changing);
// err: a failure that path would meet too. A view older than the
// namespace is reloaded under the namespace lock (shared, then dropped:
// lock order) and the domain taken again; doing the change on the
// namespace path instead would change the generation once more, and two
// hosts would send each other there at every change.
func (v *Volume) fastStart(t *txn, parts []string) (c *nsCache, pino uint32, ok bool, err error) {
	if !v.sbl().DirDomains() {
		return nil, 0, false, nil
	}
	if err := v.live(); err != nil {
		return nil, 0, true, err
	}
	t.lockNSOp()
	for try := 0; ; try++ {
		v.nsv.mu.Lock()
		c = v.nsv.c
		v.nsv.mu.Unlock()
		if c != nil {
			// a stale view may lead to the wrong domain: the check below finds it
			p, pe, err := c.lookup(parts)
			if err != nil || pe.typ != typeDir {
				if try > 0 {
					return nil, 0, false, nil
				}
			} else {
				k := keyDir(dirClass(p))
				if err := t.lock(k, true); err != nil {
					return nil, 0, true, err
				}
				if g, good := v.nsGenNow(); good && g == c.gen {
					if err := v.refreshClass(c, dirClass(p)); err != nil {
						return nil, 0, true, err
					}
					return c, p, true, nil
				}
				t.drop(k)
			}
		}
		if try == 2 {
			return nil, 0, false, nil
		}
		if err := t.lock(keyNS, false); err != nil {
			return nil, 0, true, err
		}
		_, err := t.loadNS()
		t.drop(keyNS)
		delete(t.blocks, v.sbl().nsBlock())
		if err != nil {
			return nil, 0, true, err
		}
	}
}

// createFast creates file parts in its directory's domain (see above).
func (v *Volume) createFast(parts []string) (uint32, uint64, bool, error) {
	t := v.newTxn()
	defer t.release()
	c, pino, ok, err := v.fastStart(t, parts[:len(parts)-1])
	if !ok || err != nil {
		return 0, 0, ok, err
	}
	name := parts[len(parts)-1]
	if _, dup := c.children[pino][name]; dup {
		return 0, 0, true, fmt.Errorf("%w: %s", ErrExist, strings.Join(parts, "/"))
	}
	ino, found := c.freeInoIn(dirClass(pino))
	if !found {
		return 0, 0, false, nil
	}
	gen, ok := v.nextFastGen()
	if !ok {
		return 0, 0, false, nil
	}
	if err := t.lock(keyInode(ino), true); err != nil {
		return 0, 0, true, err
	}
	if err := t.putDirent(ino, dirent{typ: typeFile, parent: pino, gen: gen, name: name}); err != nil {
		return 0, 0, true, err
	}
	if err := t.putInode(ino, &inode{typ: typeFile, gen: gen, mtime: time.Now().UnixNano()}); err != nil {
		return 0, 0, true, err
	}
	if err := t.commit(); err != nil {
		return 0, 0, true, err
	}
	t.nsApply(c)
	return ino, gen, true, nil
}

// removeFast removes the file at parts in its directory's domain when its
// entry is in its directory's class.
func (v *Volume) removeFast(parts []string) (bool, error) {
	t := v.newTxn()
	defer t.release()
	c, pino, ok, err := v.fastStart(t, parts[:len(parts)-1])
	if !ok || err != nil {
		return ok, err
	}
	ino, ok := c.children[pino][parts[len(parts)-1]]
	if !ok {
		return true, fmt.Errorf("%w: %s", ErrNotExist, strings.Join(parts, "/"))
	}
	if c.ents[ino].typ != typeFile || dirClass(ino) != dirClass(pino) {
		return false, nil
	}
	if err := t.removeData(ino); err != nil {
		return true, err
	}
	if err := t.freeEntry(ino); err != nil {
		return true, err
	}
	if err := t.commit(); err != nil {
		return true, err
	}
	t.nsApply(c)
	return true, nil
}

// nsApply brings c up to the directory-entry blocks t committed, without
// a namespace change (a fast change; the caller holds nsOp).
func (t *txn) nsApply(c *nsCache) { t.nsSetBlocks(c, true, nil) }

// freeInoIn picks a free inode number in class x's runs below the high
// water mark.
func (c *nsCache) freeInoIn(x uint32) (uint32, bool) {
	for base := uint64(x) * inoChunk; base < uint64(c.hdr.hw); base += MaxSlots * inoChunk {
		for ino := uint32(base); ino < uint32(base)+inoChunk && ino < c.hdr.hw; ino++ {
			if _, used := c.ents[ino]; !used && ino > rootIno {
				return ino, true
			}
		}
	}
	return 0, false
}

// nextFastGen: a generation no other create of any mount gives (see
// above); false once this mount's counter ran out.
func (v *Volume) nextFastGen() (uint64, bool) {
	n := v.fastGen.Add(1)
	if n >= 1<<32 {
		return 0, false
	}
	v.hbMu.Lock()
	mg := v.hb.MountGen
	v.hbMu.Unlock()
	return 1<<63 | uint64(v.slot)<<56 | (mg&(1<<24-1))<<32 | n, true
}

// hwAfter: the high-water mark once ino is in use; on version 5 the rest
// of ino's run comes below it too, so fast creates find room there.
func hwAfter(sb *Superblock, hw, ino uint32) uint32 {
	if sb.DirDomains() {
		return max(hw, min(sb.InodeCount, (ino/inoChunk+1)*inoChunk))
	}
	return max(hw, ino+1)
}

// countFile changes the header's file count (not kept on version 5).
func countFile(sb *Superblock, h *nsHeader, d int) {
	if !sb.DirDomains() {
		h.files = uint32(int(h.files) + d)
	}
}

// prefClass: the run class a new entry's inode number is looked for in
// first: a file's directory's on version 5 (so it can later be removed in
// that directory's domain), else this mount's slot's.
func (v *Volume) prefClass(typ uint8, parent uint32) int {
	if typ == typeFile && v.sbl().DirDomains() {
		return int(dirClass(parent))
	}
	return v.slot
}

// loadNSDirs is loadNSx(true) for a namespace holder that changes only
// the directories at dirs and the entries in them (RemoveDirs; a dir
// whose errs entry is set is skipped). At the namespace's generation the
// view is current but for files that other hosts' fast changes created or
// removed, each in its own directory's class (readers trust it so too:
// loadNS, lookupFresh): re-reading those directories' classes is enough,
// instead of the whole directory table (a MiB at a few hundred VMs). Any
// other case loads it all.
func (t *txn) loadNSDirs(dirs [][]string, errs []error) (*nsCache, error) {
	if !t.v.sbl().DirDomains() {
		return t.loadNS()
	}
	c, err := t.loadNS() // at the same generation: the view as it is
	if err != nil {
		return nil, err
	}
	fresh := map[uint32]bool{}
	for i, parts := range dirs {
		if errs[i] != nil {
			continue
		}
		ino, e, err := c.lookup(parts)
		if err != nil || e.typ != typeDir {
			return t.loadNSx(true) // the caller judges a current view
		}
		if x := dirClass(ino); !fresh[x] {
			fresh[x] = true
			if err := t.v.refreshClass(c, x); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// loadNSNew is loadNSx(true) for a namespace holder that adds a
// directory in the directory at parent and n files in the new one
// (CreateFiles). At the namespace's generation the view is current but
// for other hosts' fast changes, each in its own directory's class (see
// loadNSDirs). A fast change can add or remove a name in a directory and
// take or free an inode number of that directory's class, nothing else.
// So re-reading the parent's class (the names in it) and the classes of
// the n+1 numbers CreateFiles will pick (picked as it will: freeIno with
// prefClass, a class re-read before the numbers in it count as free) is
// enough. Any other case loads it all.
func (t *txn) loadNSNew(parent []string, n int) (*nsCache, error) {
	v := t.v
	if !v.sbl().DirDomains() {
		return t.loadNS()
	}
	c, err := t.loadNS()
	if err != nil {
		return nil, err
	}
	pino, pe, err := c.lookup(parent)
	if err != nil || pe.typ != typeDir {
		return t.loadNSx(true) // the caller judges a current view
	}
	fresh := map[uint32]bool{}
	refresh := func(x uint32) error {
		fresh[x] = true
		return v.refreshClass(c, x)
	}
	if err := refresh(dirClass(pino)); err != nil {
		return nil, err
	}
	limit := v.sbl().InodeCount
	for range MaxSlots + 1 {
		taken := map[uint32]bool{}
		dino, ok := c.freeIno(limit, v.prefClass(typeDir, pino), taken)
		if !ok {
			return t.loadNSx(true)
		}
		taken[dino] = true
		picked := []uint32{dino}
		for range n {
			ino, ok := c.freeIno(limit, v.prefClass(typeFile, dino), taken)
			if !ok {
				return t.loadNSx(true)
			}
			taken[ino] = true
			picked = append(picked, ino)
		}
		stale := false
		for _, ino := range picked {
			if x := dirClass(ino); !fresh[x] {
				stale = true
				if err := refresh(x); err != nil {
					return nil, err
				}
			}
		}
		if !stale {
			return c, nil
		}
	}
	return t.loadNSx(true)
}

// lookupFresh resolves parts, bringing the last directory's entries up to
// date first on version 5 (a reader's part; see above).
func (t *txn) lookupFresh(c *nsCache, parts []string) (uint32, dirent, error) {
	if len(parts) > 0 && t.v.sbl().DirDomains() {
		pino, pe, err := c.lookup(parts[:len(parts)-1])
		if err != nil {
			return 0, dirent{}, err
		}
		if pe.typ == typeDir {
			if err := t.dirFresh(c, pino); err != nil {
				return 0, dirent{}, err
			}
		}
	}
	return c.lookup(parts)
}
