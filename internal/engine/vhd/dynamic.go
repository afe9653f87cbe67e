package vhd

import (
	"encoding/binary"
	"fmt"
	"io"
)

// readFull reads exactly len(p) bytes of f at off.
func readFull(f io.ReaderAt, p []byte, off int64) error {
	n, err := f.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("vhd: reading %d bytes at %d: %w", len(p), off, err)
}

func bitSet(bm []byte, sector int64) bool {
	return bm[sector>>3]&(0x80>>(sector&7)) != 0
}

// bitmap returns block idx's sector bitmap (bit set = sector holds
// data; most significant bit of byte 0 is the block's first sector),
// reading it once and caching it.
func (d *Disk) bitmap(idx uint32) ([]byte, error) {
	d.bmMu.Lock()
	defer d.bmMu.Unlock()
	if bm, ok := d.bmaps[idx]; ok {
		return bm, nil
	}
	bm := make([]byte, d.bmSize)
	if err := readFull(d.f, bm, int64(d.bat[idx])*SectorSize); err != nil {
		return nil, fmt.Errorf("vhd: reading bitmap of block %d: %w", idx, err)
	}
	d.bmaps[idx] = bm
	return bm, nil
}

// readDynamic fills p from the virtual disk at off (within Size):
// sectors the disk holds from its blocks, the rest from readBelow.
func (d *Disk) readDynamic(p []byte, off int64) error {
	bs := int64(d.hdr.BlockSize)
	for len(p) > 0 {
		idx, in := off/bs, off%bs
		n := min(int64(len(p)), bs-in)
		chunk := p[:n]
		if e := d.bat[idx]; e == unallocated {
			if err := d.readBelow(chunk, off); err != nil {
				return err
			}
		} else {
			bm, err := d.bitmap(uint32(idx))
			if err != nil {
				return err
			}
			base := int64(e)*SectorSize + d.bmSize
			for pos := in; pos < in+n; {
				set := bitSet(bm, pos/SectorSize)
				end := (pos/SectorSize + 1) * SectorSize
				for end < in+n && bitSet(bm, end/SectorSize) == set {
					end += SectorSize
				}
				end = min(end, in+n)
				sub := chunk[pos-in : end-in]
				if set {
					if err := readFull(d.f, sub, base+pos); err != nil {
						return err
					}
				} else if err := d.readBelow(sub, idx*bs+pos); err != nil {
					return err
				}
				pos = end
			}
		}
		p, off = p[n:], off+n
	}
	return nil
}

// writeDynamic writes p to the virtual disk at off (within Size), with
// d.mu held exclusively. A new block is placed where the footer is: the
// footer is first rewritten past the block (so the file always ends in a
// valid footer), then the data, the sector bitmap and last the BAT
// entry are written; a crash before the BAT entry only leaks the space.
func (d *Disk) writeDynamic(p []byte, off int64) error {
	bs := int64(d.hdr.BlockSize)
	for len(p) > 0 {
		idx, in := off/bs, off%bs
		n := min(int64(len(p)), bs-in)
		e := d.bat[idx]
		fresh := e == unallocated
		var bm []byte
		if fresh {
			pos := (d.fileSize - FooterSize + SectorSize - 1) / SectorSize * SectorSize
			if pos/SectorSize >= unallocated {
				return fmt.Errorf("vhd: image file would exceed the 2 TiB the BAT can address")
			}
			end := pos + d.bmSize + bs
			if _, err := d.f.WriteAt(d.footer.Marshal(), end); err != nil {
				return fmt.Errorf("vhd: moving footer: %w", err)
			}
			d.fileSize = end + FooterSize
			e = uint32(pos / SectorSize)
			bm = make([]byte, d.bmSize)
		} else {
			var err error
			if bm, err = d.bitmap(uint32(idx)); err != nil {
				return err
			}
		}
		base := int64(e) * SectorSize
		if _, err := d.f.WriteAt(p[:n], base+d.bmSize+in); err != nil {
			return fmt.Errorf("vhd: writing block %d: %w", idx, err)
		}
		changed := fresh
		for s := in / SectorSize; s <= (in+n-1)/SectorSize; s++ {
			if !bitSet(bm, s) {
				bm[s>>3] |= 0x80 >> (s & 7)
				changed = true
			}
		}
		if changed {
			if _, err := d.f.WriteAt(bm, base); err != nil {
				return fmt.Errorf("vhd: writing bitmap of block %d: %w", idx, err)
			}
		}
		if fresh {
			var eb [4]byte
			binary.BigEndian.PutUint32(eb[:], e)
			if _, err := d.f.WriteAt(eb[:], int64(d.hdr.TableOffset)+idx*4); err != nil {
				return fmt.Errorf("vhd: writing BAT entry %d: %w", idx, err)
			}
			d.bat[idx] = e
			d.bmMu.Lock()
			d.bmaps[uint32(idx)] = bm
			d.bmMu.Unlock()
		}
		p, off = p[n:], off+n
	}
	return nil
}

// growDynamic implements Grow for dynamic disks (d.mu held).
func (d *Disk) growDynamic(nf Footer) error {
	size := int64(nf.CurrentSize)
	bs := int64(d.hdr.BlockSize)
	need := uint32((size + bs - 1) / bs)
	footerPos := d.fileSize - FooterSize
	if need > d.hdr.MaxTableEntries {
		tbl := int64(d.hdr.TableOffset)
		newLen := batBytes(need)
		// The BAT may grow in place up to the first structure after it
		// (the footer moves, so it does not count).
		limit := int64(-1)
		for _, e := range d.bat {
			if s := int64(e) * SectorSize; e != unallocated && s >= tbl && (limit < 0 || s < limit) {
				limit = s
			}
		}
		if d.hdrOff >= tbl && (limit < 0 || d.hdrOff < limit) {
			limit = d.hdrOff
		}
		for _, l := range d.hdr.Locators() {
			if s := int64(l.Offset); s >= tbl && (limit < 0 || s < limit) {
				limit = s
			}
		}
		newTbl := tbl
		if limit >= 0 && tbl+newLen > limit {
			newTbl = (footerPos + SectorSize - 1) / SectorSize * SectorSize
		}
		newFooterPos := max(footerPos, newTbl+newLen)
		if newFooterPos/SectorSize >= unallocated {
			return fmt.Errorf("%w: relocating the BAT would put it past the 2 TiB the format can address", ErrNoRoom)
		}
		// 1. The file ends in a valid footer (still the old size).
		if newFooterPos != footerPos {
			if _, err := d.f.WriteAt(d.footer.Marshal(), newFooterPos); err != nil {
				return fmt.Errorf("vhd: moving footer: %w", err)
			}
			d.fileSize = newFooterPos + FooterSize
		}
		// 2. The new BAT: old entries, then unallocated ones, sector padded.
		bat := make([]uint32, need)
		copy(bat, d.bat)
		for i := len(d.bat); i < len(bat); i++ {
			bat[i] = unallocated
		}
		buf := make([]byte, newLen)
		for i := range buf {
			buf[i] = 0xFF
		}
		for i, e := range bat {
			binary.BigEndian.PutUint32(buf[i*4:], e)
		}
		if _, err := d.f.WriteAt(buf, newTbl); err != nil {
			return fmt.Errorf("vhd: writing BAT: %w", err)
		}
		// 3. The header (its changing fields all sit in its first sector).
		h := *d.hdr
		h.TableOffset, h.MaxTableEntries = uint64(newTbl), need
		if _, err := d.f.WriteAt(h.Marshal(), d.hdrOff); err != nil {
			return fmt.Errorf("vhd: writing dynamic header: %w", err)
		}
		d.hdr, d.bat = &h, bat
		footerPos = newFooterPos
	}
	// 4. The new size: footer at the end, then its copy at offset 0.
	fb := nf.Marshal()
	if _, err := d.f.WriteAt(fb, footerPos); err != nil {
		return fmt.Errorf("vhd: writing footer: %w", err)
	}
	d.footer = nf
	if _, err := d.f.WriteAt(fb, 0); err != nil {
		return fmt.Errorf("vhd: writing footer copy: %w", err)
	}
	return nil
}
