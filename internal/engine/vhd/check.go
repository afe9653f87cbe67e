package vhd

import (
	"bytes"
	"fmt"
	"sort"
)

// maxProblems bounds Check's report on badly damaged images.
const maxProblems = 100

// Check verifies the VHD in f (fileSize bytes long) and returns the
// problems found, or nil if it is consistent. It checks the footer
// (cookie, checksum, version, type, size, geometry not addressing more
// than the current size), for fixed disks the file length, and for
// dynamic disks the footer copy at offset 0, the dynamic header
// (cookie, checksum, version, block size, table size), the BAT's
// placement, and that every allocated block lies inside the file and
// overlaps neither another block nor the footers, header or BAT.
// Unused space (left by a crash mid-allocation or a relocated BAT) is
// not a problem. A differencing disk's own structures are checked too
// (parent UUID set, parent locators readable and not overlapping), but
// its parent only by CheckChain: Check reports that it was not checked.
func Check(f File, fileSize int64) []string {
	return CheckChain(f, fileSize, nil)
}

// CheckChain is Check that, for a differencing disk, also opens its
// parents through open (as OpenChain does) and reports a parent that is
// missing or whose footer UUID is not the one its child records (naming
// the parent's path), and each parent's own problems.
func CheckChain(f File, fileSize int64, open ParentOpener) []string {
	probs := checkImage(f, fileSize)
	if len(probs) > 0 {
		return probs
	}
	d, err := openImage(f, fileSize)
	if err != nil || d.footer.DiskType != Differencing {
		return probs
	}
	if err := d.openParent(open, "", 0); err != nil {
		return append(probs, err.Error())
	}
	defer func() { _ = d.Close() }()
	for p := d.parent; p != nil && len(probs) < maxProblems; p = p.parent {
		for _, q := range checkImage(p.f, p.fileSize) {
			probs = append(probs, fmt.Sprintf("parent %q: %s", d.parentPath, q))
		}
		d = p
	}
	return probs
}

func checkImage(f File, fileSize int64) []string {
	var probs []string
	add := func(format string, args ...any) bool {
		if len(probs) < maxProblems {
			probs = append(probs, fmt.Sprintf(format, args...))
		}
		return len(probs) < maxProblems
	}
	if fileSize < FooterSize {
		add("file is %d bytes, too small for a footer", fileSize)
		return probs
	}
	if fileSize%SectorSize != 0 {
		add("file size %d is not a multiple of %d", fileSize, SectorSize)
	}
	endB := make([]byte, FooterSize)
	if err := readFull(f, endB, fileSize-FooterSize); err != nil {
		add("%v", err)
		return probs
	}
	ft, err := ParseFooter(endB)
	if err != nil {
		add("footer at end of file: %v", err)
		return probs
	}
	if err := ft.validate(); err != nil {
		add("footer: %v", err)
		return probs
	}
	size := int64(ft.CurrentSize)
	if ft.Features&featureReserve == 0 {
		add("footer features %#x lack the reserved bit 0x2", ft.Features)
	}
	// The maximum geometry is also the marker qemu (force_size) writes for
	// "use the current size", so it may exceed the size.
	if g := ft.Geometry.Sectors(); g*SectorSize > size && g != maxCHSSectors {
		add("geometry %v addresses %d bytes, more than the current size %d", ft.Geometry, g*SectorSize, size)
	}
	if ft.DiskType == Fixed {
		if ft.DataOffset != fixedDataOff {
			add("fixed disk footer data offset is %#x, want %#x", ft.DataOffset, fixedDataOff)
		}
		if fileSize != size+FooterSize {
			add("fixed disk of %d bytes in a file of %d bytes, want %d", size, fileSize, size+FooterSize)
		}
		return probs
	}

	cp := make([]byte, FooterSize)
	if err := readFull(f, cp, 0); err != nil {
		add("footer copy: %v", err)
	} else if !bytes.Equal(cp, endB) {
		if _, err := ParseFooter(cp); err != nil {
			add("footer copy at offset 0: %v", err)
		} else {
			add("footer copy at offset 0 differs from the footer at the end")
		}
	}
	d, err := openImage(f, fileSize)
	if err != nil {
		add("%v", err)
		return probs
	}
	h := d.hdr
	if h.DataOffset != fixedDataOff && h.DataOffset != 0xFFFFFFFF {
		add("dynamic header data offset is %#x, want all ones", h.DataOffset)
	}
	if ft.DiskType == Dynamic && h.ParentUUID != (UUID{}) {
		add("dynamic (not differencing) disk has a parent UUID %v", h.ParentUUID)
	}
	var locs []Locator
	if ft.DiskType == Differencing {
		if h.ParentUUID == (UUID{}) {
			add("differencing disk has no parent UUID")
		}
		if _, _, err := parentPath(f, h, fileSize); err != nil {
			add("%v", err)
		}
		locs = h.Locators()
	}

	type extent struct {
		start, end int64
		what       string
	}
	ext := []extent{
		{0, FooterSize, "footer copy"},
		{d.hdrOff, d.hdrOff + HeaderSize, "dynamic header"},
		{int64(h.TableOffset), int64(h.TableOffset) + batBytes(h.MaxTableEntries), "BAT"},
		{fileSize - FooterSize, fileSize, "footer"},
	}
	for _, l := range locs {
		if l.Length == 0 || l.Offset%SectorSize != 0 || int64(l.Offset) > fileSize {
			continue // parentPath reported it, or the entry holds no data
		}
		s := int64(l.Offset)
		ext = append(ext, extent{s, s + (int64(l.Length)+SectorSize-1)/SectorSize*SectorSize, fmt.Sprintf("parent locator %q", l.Code[:])})
	}
	blockLen := d.bmSize + int64(h.BlockSize)
	for i, e := range d.bat {
		if e == unallocated {
			continue
		}
		s := int64(e) * SectorSize
		ext = append(ext, extent{s, s + blockLen, fmt.Sprintf("block %d", i)})
	}
	sort.Slice(ext, func(i, j int) bool { return ext[i].start < ext[j].start })
	// Report each extent that starts before the furthest end seen so far.
	far := 0
	for i := 1; i < len(ext); i++ {
		if ext[i].start < ext[far].end {
			if !add("%s [%d,%d) overlaps %s [%d,%d)", ext[i].what, ext[i].start, ext[i].end, ext[far].what, ext[far].start, ext[far].end) {
				break
			}
		}
		if ext[i].end > ext[far].end {
			far = i
		}
	}
	return probs
}
