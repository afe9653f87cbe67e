package kayofs

import (
	"encoding/binary"
	"fmt"
)

// Classes in use (version 5). A namespace change re-reads the directory
// table (loadNSx), and on a version-5 volume the runs of the 64 classes
// interleave: 16 nodes' directories fill 16 classes, yet the table below
// the high-water mark spans all 64, three quarters of it free. So the
// namespace header also records which classes may hold entries: bytes
// [80,88) a bitmap (bit x: class x), [88,96) the namespace generation it
// was written at. A reload trusts the bitmap only when that generation is
// the header's own: a binary that does not keep it (older version-5
// binaries write the header's fields into the block as read, so the
// bitmap stays behind while the generation moves on) makes the next
// reload read everything, and the next change by this binary stamps it
// again, computed from that complete view.
//
// Why a class outside the bitmap is empty: the writer of the stamp holds
// the namespace lock and every directory domain, and sets the classes of
// every entry in its complete view and of every directory-entry block its
// transaction touches. Until the next namespace change (which stamps
// again, or moves the generation past the stamp), only fast changes
// (dirdom.go) write the table, and they write entries in the class of
// their directory, whose own entry lies in that class: its bit is set.
const (
	nsUsedOff    = 80 // bitmap of classes that may hold entries
	nsUsedGenOff = 88 // the namespace generation it is valid at
)

// testHookNoNSStamp makes namespace changes leave the record as it is, as
// a binary that does not keep it.
var testHookNoNSStamp bool

// nsUsedClasses returns the header b's bitmap of classes in use, and
// whether it is valid for the header's generation gen.
func nsUsedClasses(b []byte, gen uint64) (uint64, bool) {
	le := binary.LittleEndian
	if le.Uint64(b[nsUsedGenOff:]) != gen {
		return 0, false
	}
	return le.Uint64(b[nsUsedOff:]), true
}

// stampNSUsed records used as the classes in use at generation gen in the
// header b; ok false records none (the next reload reads everything).
func stampNSUsed(b []byte, used, gen uint64, ok bool) {
	le := binary.LittleEndian
	if !ok {
		used, gen = 0, 0 // generations start at 1: never valid
	}
	le.PutUint64(b[nsUsedOff:], used)
	le.PutUint64(b[nsUsedGenOff:], gen)
}

// classOfBlock: the class of directory-entry block i (version 5).
func classOfBlock(sb *Superblock, i uint64) uint32 {
	return uint32(i / sb.direntRunBlocks() % MaxSlots)
}

// stampNS sets the header buffer b's classes in use for generation gen:
// those of the view's entries and of every directory-entry block t holds.
// The caller holds the namespace lock and every directory domain, and the
// view is complete (nsTxn).
func (t *txn) stampNS(b []byte, gen uint64) {
	if testHookNoNSStamp {
		return
	}
	sb := t.v.sbl()
	v := t.v
	v.nsv.mu.Lock()
	c := v.nsv.c
	var used uint64
	if c != nil {
		for x, n := range c.classN {
			if n > 0 {
				used |= 1 << x
			}
		}
	}
	v.nsv.mu.Unlock()
	lo, hi := sb.direntStart(), sb.direntStart()+sb.direntBlocks()
	for blk := range t.blocks {
		if blk >= lo && blk < hi {
			used |= 1 << classOfBlock(sb, blk-lo)
		}
	}
	stampNSUsed(b, used, gen, c != nil)
}

// markClassUsed adds ino's class to the stamp of the header t already
// wrote (an entry added after putNSHeader in the same transaction).
func (t *txn) markClassUsed(ino uint32) {
	sb := t.v.sbl()
	hb, ok := t.blocks[sb.nsBlock()]
	if !ok || !hb.dirty || !sb.DirDomains() {
		return
	}
	gen := binary.LittleEndian.Uint64(hb.buf[56:])
	if used, valid := nsUsedClasses(hb.buf, gen); valid {
		stampNSUsed(hb.buf, used|1<<dirClass(ino), gen, true)
	}
}

// readClasses brings the view c up to the directory-entry blocks below
// block n of the classes in used, read from disk a stretch of adjacent
// runs at a time; the view's entries of other classes are dropped (they
// are free on disk). The caller holds nsMu.
func (v *Volume) readClasses(c *nsCache, sb *Superblock, n, used uint64) error {
	bs := uint64(sb.bs())
	rb := sb.direntRunBlocks()
	runs := (n + rb - 1) / rb
	in := func(r uint64) bool { return used&(1<<(r%MaxSlots)) != 0 }
	var zero []byte
	for r := uint64(0); r < runs; {
		if !in(r) {
			if c.classN[r%MaxSlots] > 0 {
				if zero == nil {
					zero = make([]byte, bs)
				}
				for i := r * rb; i < min((r+1)*rb, n); i++ {
					if err := c.setBlock(sb, i, zero); err != nil {
						return err
					}
				}
			}
			r++
			continue
		}
		e := r + 1
		for e < runs && in(e) {
			e++
		}
		first, last := r*rb, min(e*rb, n)
		size := (last - first) * bs
		if uint64(cap(v.nsv.rd)) < size {
			v.nsv.rd = make([]byte, 2*size)
		}
		raw := v.nsv.rd[:size]
		if _, err := v.dev.ReadAt(raw, int64((sb.direntStart()+first)*bs)); err != nil {
			return fmt.Errorf("kayofs: reading the directory table: %w", err)
		}
		for i := first; i < last; i++ {
			if err := c.setBlock(sb, i, raw[(i-first)*bs:(i-first+1)*bs]); err != nil {
				return err
			}
		}
		r = e
	}
	return nil
}
