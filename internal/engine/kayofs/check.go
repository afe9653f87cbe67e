package kayofs

import (
	"bytes"
	"fmt"
	"math/bits"
)

// Problem is one violated invariant found by Check.
type Problem struct {
	Area  string // superblock, slot, heartbeat, journal, namespace, inode, extent, group
	Block uint64 // block concerned (0 when not block-specific)
	Msg   string
}

func (p Problem) String() string {
	if p.Block != 0 {
		return fmt.Sprintf("%s: block %d: %s", p.Area, p.Block, p.Msg)
	}
	return p.Area + ": " + p.Msg
}

const maxProblems = 1000

type checker struct {
	dev     Device
	sb      *Superblock
	overlay map[uint64][]byte
	probs   []Problem
	owned   map[uint32][]byte // group → bitset of data blocks owned by extents
}

func (c *checker) add(area string, blk uint64, f string, a ...any) {
	if len(c.probs) < maxProblems {
		c.probs = append(c.probs, Problem{area, blk, fmt.Sprintf(f, a...)})
	}
}

// read returns a block as it will be once pending journals are replayed.
func (c *checker) read(blk uint64) ([]byte, error) {
	if b, ok := c.overlay[blk]; ok {
		return append([]byte(nil), b...), nil
	}
	return readBlock(c.dev, c.sb.bs(), blk)
}

// readTyped classifies a block; corrupt blocks are reported and return nil.
func (c *checker) readTyped(area string, blk uint64, typ uint32) ([]byte, blockState, error) {
	b, err := c.read(blk)
	if err != nil {
		return nil, blockCorrupt, err
	}
	st, why := checkBlock(b, typ, c.sb.UUID, blk)
	if st == blockCorrupt {
		c.add(area, blk, "%s", why)
		return nil, st, nil
	}
	return b, st, nil
}

// Check verifies every invariant of the volume and returns each violation:
// superblock copies, slot and heartbeat records, journals (a committed
// transaction is fine: it is replayed in memory before the rest is
// checked), directory tree, inodes and extents, and allocation groups
// (bitmaps equal to the extents in use, counts equal to the bitmaps, no
// block owned twice). It reads only; run it on a quiescent volume.
func Check(dev Device) ([]Problem, error) {
	sb, err := ReadSuperblock(dev)
	if err != nil {
		return nil, err
	}
	c := &checker{dev: dev, sb: sb, overlay: map[uint64][]byte{}, owned: map[uint32][]byte{}}
	bs := sb.bs()
	p, err := readBlock(dev, bs, 0)
	if err != nil {
		return nil, err
	}
	q, err := readBlock(dev, bs, 1)
	if err != nil {
		return nil, err
	}
	if _, err := decodeSuperblock(p); err != nil {
		c.add("superblock", 0, "primary: %v", err)
	}
	if _, err := decodeSuperblock(q); err != nil {
		c.add("superblock", 1, "backup: %v", err)
	} else if !bytes.Equal(p[:sbEncSize], q[:sbEncSize]) {
		c.add("superblock", 1, "backup differs from primary")
	}
	for s := 0; s < MaxSlots; s++ {
		e, err := readSlot(dev, sb, s)
		if err != nil {
			c.add("slot", sb.slotBlock(s), "slot %d: %v", s, err)
		} else if s >= int(sb.SlotCount) && e.State != SlotFree {
			c.add("slot", sb.slotBlock(s), "slot %d beyond slot count %d is in use", s, sb.SlotCount)
		}
		if _, err := readHeartbeat(dev, sb, s); err != nil {
			c.add("heartbeat", sb.hbBlock(s), "slot %d: %v", s, err)
		}
		pend, err := readPending(dev, sb, s)
		if err != nil {
			c.add("journal", sb.journalStart(s), "slot %d: %v", s, err)
			continue
		}
		if pend != nil {
			for i, blk := range pend.blocks {
				c.overlay[blk] = pend.images[i]
			}
		}
	}
	c.checkNamespace()
	if err := c.checkGroups(); err != nil {
		return c.probs, err
	}
	return c.probs, nil
}

func (c *checker) checkNamespace() {
	sb := c.sb
	hb, st, err := c.readTyped("namespace", sb.nsBlock(), tNSHeader)
	if err != nil || hb == nil {
		return
	}
	if st == blockFresh {
		c.add("namespace", sb.nsBlock(), "namespace header never written")
		return
	}
	h, err := decodeNSHeader(hb, sb.InodeCount)
	if err != nil {
		c.add("namespace", sb.nsBlock(), "%v", err)
		return
	}
	ents := map[uint32]dirent{}
	per := sb.direntsPerBlock()
	for i := uint64(0); i < sb.direntBlocks(); i++ {
		ino, n := sb.direntSpan(i)
		blk := sb.direntStart() + i
		b, st, err := c.readTyped("namespace", blk, tDirent)
		if err != nil || b == nil || st == blockFresh {
			continue
		}
		es, err := decodeDirents(b, per)
		if err != nil {
			c.add("namespace", blk, "directory entries: %v", err)
			continue
		}
		for j, e := range es {
			switch {
			case e.typ == typeFree:
			case j >= n:
				c.add("namespace", blk, "directory entry %d past its run of inode numbers in use", j)
			default:
				ents[ino+uint32(j)] = e
			}
		}
	}
	var files, dirs uint32
	names := map[uint32]map[string]uint32{}
	used, stamped := nsUsedClasses(hb, h.gen) // classes in use (nsclasses.go)
	stamped = stamped && sb.DirDomains()
	for ino, e := range ents {
		blk, _ := sb.direntBlock(ino)
		if ino >= h.hw || ino == 0 {
			c.add("namespace", blk, "entry %d in use beyond high water %d (or reserved)", ino, h.hw)
		}
		if stamped && used&(1<<dirClass(ino)) == 0 {
			c.add("namespace", blk, "entry %d in class %d, which the header records as free (%b)", ino, dirClass(ino), used)
		}
		if e.typ == typeDir {
			dirs++
		} else {
			files++
		}
		if ino == rootIno {
			if e.typ != typeDir || e.parent != rootIno {
				c.add("namespace", blk, "root entry is not a directory pointing at itself")
			}
			continue
		}
		pe, ok := ents[e.parent]
		if !ok || pe.typ != typeDir {
			c.add("namespace", blk, "entry %d %q: parent %d is not a directory", ino, e.name, e.parent)
		}
		m := names[e.parent]
		if m == nil {
			m = map[string]uint32{}
			names[e.parent] = m
		}
		if other, dup := m[e.name]; dup {
			c.add("namespace", blk, "entries %d and %d both named %q in directory %d", other, ino, e.name, e.parent)
		}
		m[e.name] = ino
		// reachability: walk to the root
		a, steps := e.parent, 0
		for a != rootIno && steps <= len(ents) {
			pa, ok := ents[a]
			if !ok {
				break
			}
			a = pa.parent
			steps++
		}
		if a != rootIno {
			c.add("namespace", blk, "entry %d %q is not reachable from the root (cycle or orphan)", ino, e.name)
		}
	}
	if _, ok := ents[rootIno]; !ok {
		c.add("namespace", 0, "root directory entry missing")
	}
	if sb.DirDomains() {
		files = 0 // version 5 counts no files in the header (dirdom.go)
	}
	if files != h.files || dirs != h.dirs {
		c.add("namespace", sb.nsBlock(), "header counts %d files, %d dirs; table has %d, %d", h.files, h.dirs, files, dirs)
	}
	for ino := uint32(0); ino < sb.InodeCount && ino < max(h.hw, 2); ino++ {
		e, used := ents[ino]
		blk := sb.inodeBlock(ino)
		b, st, err := c.readTyped("inode", blk, tInode)
		if err != nil || b == nil {
			continue
		}
		if !used {
			if st == blockValid {
				if in, err := decodeInode(b); err != nil || in.typ != typeFree || len(in.ext) != 0 || in.depth != 0 {
					c.add("inode", blk, "free inode %d is not cleared", ino)
				}
			}
			continue
		}
		if st == blockFresh {
			c.add("inode", blk, "inode %d (%q) never written", ino, e.name)
			continue
		}
		in, err := decodeInode(b)
		if err != nil {
			c.add("inode", blk, "inode %d: %v", ino, err)
			continue
		}
		if in.typ != e.typ || in.gen != e.gen {
			c.add("inode", blk, "inode %d: type %d gen %d, directory entry says type %d gen %d", ino, in.typ, in.gen, e.typ, e.gen)
		}
		if in.depth > 0 {
			tree, ext, err := walkTree(in, ino, func(tb uint64) ([]byte, error) {
				if _, _, ok := sb.agOf(tb); !ok {
					return nil, fmt.Errorf("%w: tree block %d outside the data area", ErrCorrupt, tb)
				}
				b, st, err := c.readTyped("extent", tb, tExtNode)
				if err == nil && b == nil {
					err = fmt.Errorf("%w: tree block %d is corrupt", ErrCorrupt, tb)
				} else if err == nil && st == blockFresh {
					err = fmt.Errorf("%w: tree block %d never written", ErrCorrupt, tb)
				}
				return b, err
			})
			if err != nil {
				c.add("extent", blk, "inode %d: extent tree: %v", ino, err)
				continue
			}
			in.ext = ext
			for _, lv := range tree {
				for _, n := range lv {
					c.own(ino, blk, n.blk, 1, "extent-tree block")
				}
			}
		}
		c.checkExtents(ino, blk, in)
	}
}

// own marks [p, p+n) as owned by inode ino, reporting blocks outside one
// group's data area and blocks owned twice.
func (c *checker) own(ino uint32, blk, p, n uint64, what string) {
	sb := c.sb
	k, idx, ok := sb.agOf(p)
	k2, idx2, ok2 := sb.agOf(p + n - 1)
	if !ok || !ok2 || k != k2 || idx2 != idx+n-1 || idx2 >= sb.agDataLen(k) {
		c.add("extent", blk, "inode %d: %s at block %d (+%d) is not inside one group's data area", ino, what, p, n)
		return
	}
	bm := c.owned[k]
	if bm == nil {
		bm = make([]byte, (sb.agDataLen(k)+7)/8)
		c.owned[k] = bm
	}
	for i := idx; i <= idx2; i++ {
		if bitGet(bm, i) {
			c.add("extent", blk, "inode %d: block %d is owned twice", ino, sb.agDataStart(k)+i)
			return
		}
		bitSet(bm, i)
	}
}

func (c *checker) checkExtents(ino uint32, blk uint64, in *inode) {
	sb := c.sb
	limit := sb.blocksFor(in.size)
	for _, x := range in.ext {
		if x.flags == 0 && x.end() > limit {
			c.add("extent", blk, "inode %d: written extent [%d,%d) beyond size %d", ino, x.lblk, x.end(), in.size)
		}
		c.own(ino, blk, x.pblk, uint64(x.n), "extent")
	}
}

func (c *checker) checkGroups() error {
	sb := c.sb
	per := sb.bitsPerBitmap()
	for k := uint32(0); k < sb.AGCount; k++ {
		dl := sb.agDataLen(k)
		hb, st, err := c.readTyped("group", sb.agHeader(k), tAGHeader)
		if err != nil {
			return err
		}
		var h agHeader
		switch {
		case hb == nil:
			continue
		case st == blockFresh:
			h = sb.freshAG(k)
		default:
			if h, err = decodeAGHeader(sb, k, hb); err != nil {
				c.add("group", sb.agHeader(k), "%v", err)
				continue
			}
		}
		own := c.owned[k]
		for i := uint64(0); i < uint64(sb.AGBitmapBlocks); i++ {
			blk := sb.agBitmap(k, uint32(i))
			b, st, err := c.readTyped("group", blk, tBitmap)
			if err != nil {
				return err
			}
			if b == nil {
				continue
			}
			lo := i * per
			hi := min(lo+per, dl)
			capy := uint64(0)
			if hi > lo {
				capy = hi - lo
			}
			if st == blockFresh && own == nil {
				// never written and nothing owned here: all free
				if h.bmpUsed[i] != 0 {
					c.add("group", blk, "group %d bitmap %d never written, header says %d of %d used", k, i, h.bmpUsed[i], capy)
				}
				continue
			}
			var bm []byte
			if st == blockFresh {
				bm = make([]byte, sb.bs()-bmpHdrSize)
			} else {
				bm = b[bmpHdrSize:]
			}
			used := popcount(bm)
			for x := capy; x < per; x++ {
				if bitGet(bm, x) {
					c.add("group", blk, "group %d: bit %d set beyond the group's %d data blocks", k, lo+x, dl)
					break
				}
			}
			if used != uint64(h.bmpUsed[i]) {
				c.add("group", blk, "group %d bitmap %d: %d blocks used, header says %d of %d", k, i, used, h.bmpUsed[i], capy)
			}
			reported := 0
			for x := uint64(0); x < capy && reported < 3; x++ {
				// fast skip of equal bytes
				if x&7 == 0 && x+8 <= capy {
					ob := byte(0)
					if own != nil {
						ob = own[(lo+x)>>3]
					}
					if bits.OnesCount8(bm[x>>3]^ob) == 0 {
						x += 7
						continue
					}
				}
				inUse := own != nil && bitGet(own, lo+x)
				if bitGet(bm, x) != inUse {
					reported++
					if inUse {
						c.add("group", blk, "block %d is used by a file but free in the bitmap", sb.agDataStart(k)+lo+x)
					} else {
						c.add("group", blk, "block %d is allocated in the bitmap but owned by no file (leak)", sb.agDataStart(k)+lo+x)
					}
				}
			}
		}
	}
	return nil
}
