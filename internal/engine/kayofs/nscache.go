package kayofs

import (
	"bytes"
	"fmt"
)

// nsCache is a mount's view of the namespace at one generation. It keeps
// the directory-entry blocks it was decoded from, so a reload after another
// node's change reads the table in one call and decodes only the blocks
// that differ, and this mount's own commits update it without a reload.
type nsCache struct {
	gen      uint64
	hdr      nsHeader
	ents     map[uint32]dirent
	children map[uint32]map[string]uint32
	raw      []byte        // directory-entry blocks 0..len/bs as last decoded
	classN   [MaxSlots]int // entries per class (version 5: nsclasses.go)
}

func newNSCache() *nsCache {
	return &nsCache{ents: map[uint32]dirent{}, children: map[uint32]map[string]uint32{}}
}

// setBlock makes directory-entry block i (raw bytes b) part of the view,
// replacing what the view held for its entries.
func (c *nsCache) setBlock(sb *Superblock, i uint64, b []byte) error {
	bs := uint64(sb.bs())
	if have := uint64(len(c.raw)) / bs; i < have && bytes.Equal(c.raw[i*bs:(i+1)*bs], b) {
		return nil
	}
	blk := sb.direntStart() + i
	st, why := checkBlock(b, tDirent, sb.UUID, blk)
	if st == blockCorrupt {
		return fmt.Errorf("%w: directory block %d: %s", ErrCorrupt, blk, why)
	}
	first, n := sb.direntSpan(i)
	var ents []dirent
	if st == blockValid {
		var err error
		if ents, err = decodeDirents(b, sb.direntsPerBlock()); err != nil {
			return fmt.Errorf("%w: directory block %d: %v", ErrCorrupt, blk, err)
		}
		for j := n; j < len(ents); j++ {
			if ents[j].typ != typeFree {
				return fmt.Errorf("%w: directory block %d: entry %d past its run in use", ErrCorrupt, blk, j)
			}
		}
		ents = ents[:n]
	}
	for ino := first; ino < first+uint32(n); ino++ {
		if e, ok := c.ents[ino]; ok {
			delete(c.ents, ino)
			c.classN[dirClass(ino)]--
			if ino != rootIno && c.children[e.parent][e.name] == ino {
				delete(c.children[e.parent], e.name)
			}
		}
	}
	for j, e := range ents {
		if e.typ == typeFree {
			continue
		}
		ino := first + uint32(j)
		c.ents[ino] = e
		c.classN[dirClass(ino)]++
		if ino == rootIno {
			continue
		}
		m := c.children[e.parent]
		if m == nil {
			m = map[string]uint32{}
			c.children[e.parent] = m
		}
		m[e.name] = ino
	}
	if need := (i + 1) * bs; uint64(len(c.raw)) < need {
		c.raw = grown(c.raw, need)
	}
	copy(c.raw[i*bs:], b)
	return nil
}

// grown returns b lengthened to n bytes (zeros past its length); when it
// must move, its capacity at least doubles: the table grows a run at a
// time as the high-water mark rises, and a copy per run of the whole
// table cost more than reading it.
func grown(b []byte, n uint64) []byte {
	if n <= uint64(len(b)) {
		return b
	}
	if n > uint64(cap(b)) {
		nb := make([]byte, len(b), max(n, 2*uint64(cap(b))))
		copy(nb, b)
		b = nb
	}
	old := len(b)
	b = b[:n]
	clear(b[old:])
	return b
}

// loadNS returns the namespace; the caller holds the namespace lock. The
// header's generation changes with every namespace change, so an equal
// generation means the view is current. Nobody of this mount uses the view
// while the generation on disk differs from it (they would hold the lock,
// and with it the generation), so it is updated in place.
func (t *txn) loadNS() (*nsCache, error) { return t.loadNSx(false) }

// loadNSx is loadNS; all: compare every block even at the same
// generation (version 5: fast changes do not change it; dirdom.go).
func (t *txn) loadNSx(all bool) (*nsCache, error) {
	v := t.v
	sb := v.sbl()
	b, fresh, err := t.get(sb.nsBlock(), tNSHeader)
	if err != nil {
		return nil, err
	}
	if fresh {
		return nil, fmt.Errorf("%w: namespace header never written", ErrCorrupt)
	}
	h, err := decodeNSHeader(b, sb.InodeCount)
	if err != nil {
		return nil, err
	}
	v.nsv.mu.Lock()
	defer v.nsv.mu.Unlock()
	if v.nsv.c != nil && v.nsv.c.gen == h.gen && !all {
		return v.nsv.c, nil
	}
	c := v.nsv.c
	v.nsv.c = nil // until it is consistent again
	if c == nil {
		c = newNSCache()
	}
	bs := uint64(sb.bs())
	n := sb.direntBlocksBelow(h.hw)
	// one allocation for the table as far as it reaches now, not one per
	// doubling as setBlock meets its blocks (a fresh mount's first load)
	c.raw = grown(c.raw, n*bs)
	if used, ok := nsUsedClasses(b, h.gen); ok && sb.DirDomains() {
		if err := v.readClasses(c, sb, n, used); err != nil {
			return nil, err
		}
		return v.nsLoaded(c, h)
	}
	if uint64(cap(v.nsv.rd)) < n*bs {
		v.nsv.rd = make([]byte, 2*n*bs) // room for the table to grow (grown)
	}
	raw := v.nsv.rd[:n*bs]
	if _, err := v.dev.ReadAt(raw, int64(sb.direntStart()*bs)); err != nil {
		return nil, fmt.Errorf("kayofs: reading the directory table: %w", err)
	}
	for i := uint64(0); i < n; i++ {
		if err := c.setBlock(sb, i, raw[i*bs:(i+1)*bs]); err != nil {
			return nil, err
		}
	}
	return v.nsLoaded(c, h)
}

// nsLoaded makes c, brought up to header h, the view (the caller holds
// nsMu).
func (v *Volume) nsLoaded(c *nsCache, h nsHeader) (*nsCache, error) {
	if r, ok := c.ents[rootIno]; !ok || r.typ != typeDir {
		return nil, fmt.Errorf("%w: root directory entry missing", ErrCorrupt)
	}
	c.gen, c.hdr = h.gen, h
	v.nsv.c = c
	return c, nil
}

// nsCommitted brings the view c up to the namespace change t just
// committed (header h): its directory-entry blocks are on disk as t holds
// them. The caller still holds the namespace lock exclusively.
func (t *txn) nsCommitted(c *nsCache, h nsHeader) { t.nsSetBlocks(c, false, &h) }

// nsSetBlocks copies t's directory-entry blocks (dirtyOnly: those it
// wrote) into the view c, and h, if set, as its header; a block c cannot
// take drops the view (reloaded from disk next time).
func (t *txn) nsSetBlocks(c *nsCache, dirtyOnly bool, h *nsHeader) {
	v := t.v
	sb := v.sbl()
	v.nsv.mu.Lock()
	defer v.nsv.mu.Unlock()
	if v.nsv.c != c {
		return
	}
	lo, hi := sb.direntStart(), sb.direntStart()+sb.direntBlocks()
	for blk, b := range t.blocks {
		if blk >= lo && blk < hi && (b.dirty || !dirtyOnly) {
			if err := c.setBlock(sb, blk-lo, b.buf); err != nil {
				v.nsv.c = nil
				return
			}
		}
	}
	if h != nil {
		c.gen, c.hdr = h.gen, *h
	}
}
