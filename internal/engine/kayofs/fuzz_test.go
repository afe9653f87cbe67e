package kayofs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

var fuzzUUID = [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}

func seedSuperblock(t testing.TB) []byte {
	sb, err := layout(1<<30, FormatOptions{BlockSize: 4096, Slots: 16, Label: "VMSTORE"})
	if err != nil {
		t.Fatal(err)
	}
	sb.UUID = fuzzUUID
	return sb.encode()[:sbEncSize]
}

// flipOne corrupts one byte; every decoder must then reject the block
// (checksums) or, for the superblock, at least never panic.
func FuzzSuperblock(f *testing.F) {
	good := seedSuperblock(f)
	f.Add(good, 0, byte(0))
	f.Add(good, 70, byte(1))
	f.Add(make([]byte, sbEncSize), 0, byte(0))
	f.Fuzz(func(t *testing.T, b []byte, pos int, x byte) {
		sb, err := decodeSuperblock(b)
		if err == nil {
			// whatever decodes must re-encode to the same bytes and have a
			// self-consistent layout
			if !bytes.Equal(sb.encode()[:sbEncSize], b[:sbEncSize]) {
				t.Fatalf("decoded superblock does not round-trip")
			}
			if sb.agStart() >= sb.TotalBlocks || sb.agDataLen(sb.AGCount-1) == 0 {
				t.Fatalf("accepted inconsistent layout %+v", sb)
			}
		}
		if len(b) >= sbEncSize && x != 0 && pos >= 0 {
			c := append([]byte(nil), b...)
			c[pos%sbEncSize] ^= x
			if _, err := decodeSuperblock(c); err == nil && pos%sbEncSize != 8 && bytes.Equal(b[:8], []byte(sbMagic)) && err == nil {
				if _, e0 := decodeSuperblock(b); e0 == nil {
					t.Fatalf("corruption at %d accepted", pos%sbEncSize)
				}
			}
		}
	})
}

func sealed(typ uint32, blk uint64, body func([]byte)) []byte {
	b := make([]byte, 4096)
	body(b)
	sealBlock(b, typ, fuzzUUID, blk, 7)
	return b
}

func FuzzSlotTable(f *testing.F) {
	f.Add(encodeSlot(4096, fuzzUUID, 5, SlotEntry{State: SlotMounted, Node: "Y-21-2k8x64", MountGen: 3}), uint64(5), 100, byte(1))
	f.Add(encodeHeartbeat(4096, fuzzUUID, 70, Heartbeat{Active: true, Node: "Y-22-2k8x64", Counter: 9}), uint64(70), 60, byte(0x80))
	f.Fuzz(func(t *testing.T, b []byte, blk uint64, pos int, x byte) {
		_, err1 := decodeSlot(b, fuzzUUID, blk)
		_, err2 := decodeHeartbeat(b, fuzzUUID, blk)
		if len(b) < blkHdrSize || x == 0 || pos < 0 {
			return
		}
		c := append([]byte(nil), b...)
		p := pos % len(c)
		c[p] ^= x
		if p >= 8 && p < 24 {
			return // another volume's UUID: a fresh block, by design
		}
		if _, err := decodeSlot(c, fuzzUUID, blk); err == nil && err1 == nil && bytes.Equal(b[8:24], fuzzUUID[:]) {
			t.Fatalf("corrupted slot block accepted (byte %d)", p)
		}
		if _, err := decodeHeartbeat(c, fuzzUUID, blk); err == nil && err2 == nil && bytes.Equal(b[8:24], fuzzUUID[:]) {
			t.Fatalf("corrupted heartbeat block accepted (byte %d)", p)
		}
	})
}

func FuzzJournal(f *testing.F) {
	desc := sealed(tJDesc, 300, func(b []byte) {
		b[48] = 2
		b[64] = 9
		b[76] = 10
	})
	com := sealed(tJCommit, 305, func(b []byte) { b[48] = 2 })
	f.Add(desc, uint64(300), 60, 100, byte(1))
	f.Add(com, uint64(305), 60, 50, byte(2))
	f.Fuzz(func(t *testing.T, b []byte, blk uint64, maxImgs int, pos int, x byte) {
		if maxImgs < 0 || maxImgs > 4096 {
			return
		}
		d, fresh, err := decodeJDesc(b, fuzzUUID, blk, maxImgs)
		if err == nil && !fresh {
			if len(d.blocks) < 1 || len(d.blocks) > maxImgs || len(d.blocks) != len(d.crcs) {
				t.Fatalf("descriptor with %d entries accepted", len(d.blocks))
			}
		}
		_, _, _, _, cerr := decodeJCommit(b, fuzzUUID, blk)
		_, _ = readCheckpointBlock(b, blk)
		if len(b) < blkHdrSize || x == 0 || pos < 0 {
			return
		}
		c := append([]byte(nil), b...)
		p := pos % len(c)
		if p >= 8 && p < 24 {
			return
		}
		c[p] ^= x
		if _, fr, e := decodeJDesc(c, fuzzUUID, blk, maxImgs); e == nil && !fr && err == nil && !fresh {
			t.Fatalf("corrupted descriptor accepted (byte %d)", p)
		}
		if _, _, _, _, e := decodeJCommit(c, fuzzUUID, blk); e == nil && cerr == nil {
			t.Fatalf("corrupted commit accepted (byte %d)", p)
		}
	})
}

// readCheckpointBlock classifies a checkpoint header block (fuzz helper).
func readCheckpointBlock(b []byte, blk uint64) (uint64, error) {
	st, why := checkBlock(b, tJHeader, fuzzUUID, blk)
	if st == blockCorrupt {
		return 0, errors.New(why)
	}
	if st == blockFresh {
		return 0, nil
	}
	return blockGen(b), nil
}

// fitBlock pads or cuts a fuzz input to one 4 KiB block: the mutator
// changes lengths often, and discarding those inputs wasted most runs.
func fitBlock(b []byte) []byte {
	if len(b) == 4096 {
		return b
	}
	c := make([]byte, 4096)
	copy(c, b)
	return c
}

func FuzzDirectory(f *testing.F) {
	d := sealed(tDirent, 4300, func(b []byte) {
		encodeDirent(b, 1, dirent{typ: typeDir, parent: 1, gen: 1, name: "$root"})
		encodeDirent(b, 2, dirent{typ: typeFile, parent: 1, gen: 2, name: "WEB01.vhd"})
	})
	in := sealed(tInode, 4400, func(b []byte) {
		encodeInode(b, &inode{typ: typeFile, size: 1 << 20, gen: 2, ext: []extent{{0, 9000, 100, 0}, {100, 9100, 156, extUnwritten}}})
	})
	f.Add(d, 120, byte(1))
	f.Add(in, 100, byte(4))
	f.Fuzz(func(t *testing.T, b []byte, pos int, x byte) {
		b = fitBlock(b)
		ents, err := decodeDirents(b, (4096-blkHdrSize)/direntSize)
		if err == nil {
			for _, e := range ents {
				if e.typ != typeFree && validName(e.name) != nil {
					t.Fatalf("invalid name %q accepted", e.name)
				}
			}
		}
		node, ierr := decodeInode(b)
		if ierr == nil {
			for i, e := range node.ext {
				if e.n == 0 || i > 0 && e.lblk < node.ext[i-1].end() {
					t.Fatalf("bad extent list accepted: %+v", node.ext)
				}
			}
		}
		// the block checksum must catch any corruption of a sealed block
		st, _ := checkBlock(b, tDirent, fuzzUUID, 4300)
		st2, _ := checkBlock(b, tInode, fuzzUUID, 4400)
		if x == 0 || pos < 0 || (st != blockValid && st2 != blockValid) {
			return
		}
		c := append([]byte(nil), b...)
		p := pos % len(c)
		if p >= 8 && p < 24 {
			return
		}
		c[p] ^= x
		if s, _ := checkBlock(c, tDirent, fuzzUUID, 4300); s == blockValid {
			t.Fatalf("corrupted directory block accepted (byte %d)", p)
		}
		if s, _ := checkBlock(c, tInode, fuzzUUID, 4400); s == blockValid {
			t.Fatalf("corrupted inode block accepted (byte %d)", p)
		}
	})
}

// FuzzExtentTree: tree blocks and tree inodes from arbitrary bytes decode
// to sorted, non-overlapping records or fail; never panic.
func FuzzExtentTree(f *testing.F) {
	leaf := sealed(tExtNode, 9000, func(b []byte) {
		encodeNode(b, 0, 7, []extent{{0, 9100, 16, 0}, {16, 9200, 16, extUnwritten}})
	})
	root := sealed(tInode, 4400, func(b []byte) {
		encodeInode(b, &inode{typ: typeFile, size: 1 << 30, gen: 2, depth: 1, root: []extent{{0, 9000, 2, 0}}})
	})
	f.Add(leaf, 0)
	f.Add(root, 1)
	f.Fuzz(func(t *testing.T, b []byte, level int) {
		b = fitBlock(b)
		if level < 0 || level > maxDepth {
			return
		}
		items, err := decodeNode(b, level, 7, extent{lblk: 0, n: binary.LittleEndian.Uint32(b[52:])})
		if err == nil {
			for i := 1; i < len(items); i++ {
				if items[i].lblk < items[i-1].lblk || level == 0 && items[i].lblk < items[i-1].end() {
					t.Fatalf("unsorted records accepted: %+v", items)
				}
			}
		}
		if in, err := decodeInode(b); err == nil && in.depth > 0 {
			for i := 1; i < len(in.root); i++ {
				if in.root[i].lblk <= in.root[i-1].lblk {
					t.Fatalf("unsorted index accepted: %+v", in.root)
				}
			}
		}
	})
}

func BenchmarkFormat(b *testing.B) {
	for _, c := range []struct {
		name string
		size int64
	}{{"10GiB", 10 << 30}, {"1TiB", 1 << 40}, {"16TiB-1MiB", 16<<40 - 1<<20}} {
		b.Run(c.name, func(b *testing.B) {
			dev := bigImage(b, c.size)
			var written int64
			for i := 0; i < b.N; i++ {
				if _, err := Format(dev, FormatOptions{Slots: 16, Force: true}); err != nil {
					b.Fatal(err)
				}
				written = allocatedBytes(b, dev.Path())
			}
			b.ReportMetric(float64(written), "image-bytes")
		})
	}
}
