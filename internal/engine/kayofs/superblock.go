package kayofs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"unicode/utf8"
)

// Format constants.
const (
	// FormatVersion 2 adds the lease area (lease.go) between the journals
	// and the namespace; version 1 volumes still mount with OFD locks.
	// Version 3 has version 2's layout and splits the cluster locks into
	// domains (LockDomain, lockmgr.go): binaries that lock a volume as one
	// must not mount it beside ones that do not, and they refuse version 3.
	// Version 4 has version 2's layout and gives each lock domain its own
	// on-disk lease (leasedom.go): binaries whose on-disk leases lock a
	// volume as one refuse it. Version 5 stores each run of inoChunk
	// inode numbers in directory-entry blocks of its own (dirdom.go), so a
	// file created or removed in a directory takes that directory's run
	// domain instead of the namespace lock; binaries that take the
	// namespace lock for every change refuse it.
	FormatVersion = 5
	// LeaseAreaBytes is the size of the version-2 lease area.
	LeaseAreaBytes = 1 << 20
	MaxSlots       = 64
	MinBlockSize   = 4096
	MaxBlockSize   = 65536
	MaxLabelLen    = 32
	MaxNameLen     = 255

	sbMagic    = "KAYOFS01"
	sbEncSize  = 512 // bytes of the superblock block that are encoded
	blkHdrSize = 48  // common header of every other metadata block
	rootIno    = 1
)

// Metadata block types (first 4 bytes of every metadata block).
const (
	tSlot      uint32 = 0x4b590001
	tHeartbeat uint32 = 0x4b590002
	tJHeader   uint32 = 0x4b590003
	tJDesc     uint32 = 0x4b590004
	tJCommit   uint32 = 0x4b590005
	tNSHeader  uint32 = 0x4b590006
	tDirent    uint32 = 0x4b590007
	tInode     uint32 = 0x4b590008
	tAGHeader  uint32 = 0x4b590009
	tBitmap    uint32 = 0x4b59000a
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// Errors. Callers test with errors.Is.
var (
	ErrNotFormatted = errors.New("kayofs: device holds no valid Kayo FS superblock")
	ErrCorrupt      = errors.New("kayofs: corrupt metadata")
	ErrExistingFS   = errors.New("kayofs: device holds an existing file system")
	ErrMounted      = errors.New("kayofs: volume is mounted")
	ErrNoSlot       = errors.New("kayofs: no free node slot")
	ErrNoSpace      = errors.New("kayofs: no space left on volume")
	ErrNoInodes     = errors.New("kayofs: inode table full")
	ErrExist        = errors.New("kayofs: file exists")
	ErrNotExist     = errors.New("kayofs: file does not exist")
	ErrNotDir       = errors.New("kayofs: not a directory")
	ErrIsDir        = errors.New("kayofs: is a directory")
	ErrNotEmpty     = errors.New("kayofs: directory not empty")
	ErrInvalidPath  = errors.New("kayofs: invalid path")
	ErrInvalid      = errors.New("kayofs: invalid argument")
	ErrStale        = errors.New("kayofs: file handle is stale (file was removed)")
	ErrFragmented   = errors.New("kayofs: file has too many extents")
	ErrUnmounted    = errors.New("kayofs: volume is unmounted")
)

// Superblock is the decoded volume superblock. The primary copy lives in
// block 0, an identical backup in block 1.
type Superblock struct {
	Version        uint32
	BlockSize      uint32
	UUID           [16]byte
	Label          string
	TotalBlocks    uint64
	SlotCount      uint32 // slots usable now (≤ MaxSlots)
	MaxSlots       uint32 // slots the fixed regions are sized for (always 64)
	JournalBlocks  uint32 // blocks per slot journal
	InodeCount     uint32
	AGCount        uint32
	AGDataBlocks   uint64 // data blocks of a full allocation group
	AGBitmapBlocks uint32 // bitmap blocks per allocation group
	CreatedUnix    int64
	Gen            uint64 // bumped on every superblock rewrite
}

// UUIDString formats the volume UUID canonically.
func (sb *Superblock) UUIDString() string { return formatUUID(sb.UUID) }

func formatUUID(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// Layout (block numbers) derived from the superblock.
func (sb *Superblock) bs() int                { return int(sb.BlockSize) }
func (sb *Superblock) slotBlock(s int) uint64 { return 2 + uint64(s) }
func (sb *Superblock) hbBlock(s int) uint64   { return 2 + uint64(sb.MaxSlots) + uint64(s) }
func (sb *Superblock) journalStart(s int) uint64 {
	return 2 + 2*uint64(sb.MaxSlots) + uint64(s)*uint64(sb.JournalBlocks)
}
func (sb *Superblock) leaseStart() uint64 { return sb.journalStart(int(sb.MaxSlots)) }
func (sb *Superblock) leaseBlocks() uint64 {
	if sb.Version < 2 {
		return 0
	}
	return LeaseAreaBytes / uint64(sb.BlockSize)
}

// LockDomains reports whether mounts of the volume lock it by domain
// (LockDomain) rather than as one metadata lock: format version 3.
func (sb *Superblock) LockDomains() bool { return sb.Version >= 3 }

// LeaseDomains reports whether the on-disk leases lock the volume by lease
// domain (leasedom.go) rather than as one metadata lease: format version 4.
func (sb *Superblock) LeaseDomains() bool { return sb.Version >= 4 }

func (sb *Superblock) nsBlock() uint64      { return sb.leaseStart() + sb.leaseBlocks() }
func (sb *Superblock) direntsPerBlock() int { return (sb.bs() - blkHdrSize) / direntSize }
func (sb *Superblock) direntStart() uint64  { return sb.nsBlock() + 1 }
func (sb *Superblock) direntBlocks() uint64 {
	if rb := sb.direntRunBlocks(); rb > 0 {
		return (uint64(sb.InodeCount) + inoChunk - 1) / inoChunk * rb
	}
	per := uint64(sb.direntsPerBlock())
	return (uint64(sb.InodeCount) + per - 1) / per
}

// DirDomains reports whether a file created or removed in a directory
// takes the directory's run domain instead of the namespace lock
// (dirdom.go): format version 5.
func (sb *Superblock) DirDomains() bool { return sb.Version >= 5 }

// direntRunBlocks: on a version-5 volume each run of inoChunk inode
// numbers has directory-entry blocks of its own (2 at 4 KiB, 1 from 8 KiB
// on), so a block never holds entries of two lock domains; 0 before.
func (sb *Superblock) direntRunBlocks() uint64 {
	if !sb.DirDomains() {
		return 0
	}
	per := uint64(sb.direntsPerBlock())
	return (inoChunk + per - 1) / per
}

func (sb *Superblock) direntBlock(ino uint32) (uint64, int) {
	per := uint32(sb.direntsPerBlock())
	if rb := sb.direntRunBlocks(); rb > 0 {
		i := ino % inoChunk
		return sb.direntStart() + uint64(ino/inoChunk)*rb + uint64(i/per), int(i % per)
	}
	return sb.direntStart() + uint64(ino/per), int(ino % per)
}

// direntSpan: the first inode number whose entry directory-entry block i
// (counted from direntStart) holds, and how many it holds.
func (sb *Superblock) direntSpan(i uint64) (uint32, int) {
	per := uint64(sb.direntsPerBlock())
	if rb := sb.direntRunBlocks(); rb > 0 {
		k := i % rb * per
		return uint32(i/rb*inoChunk + k), int(min(per, inoChunk-k))
	}
	return uint32(i * per), int(per)
}

// direntBlocksBelow: how many leading directory-entry blocks hold every
// entry below inode number hw.
func (sb *Superblock) direntBlocksBelow(hw uint32) uint64 {
	if rb := sb.direntRunBlocks(); rb > 0 {
		return (uint64(hw) + inoChunk - 1) / inoChunk * rb
	}
	per := uint64(sb.direntsPerBlock())
	return (uint64(hw) + per - 1) / per
}
func (sb *Superblock) inodeStart() uint64           { return sb.direntStart() + sb.direntBlocks() }
func (sb *Superblock) inodeBlock(ino uint32) uint64 { return sb.inodeStart() + uint64(ino) }
func (sb *Superblock) agStart() uint64              { return sb.inodeStart() + uint64(sb.InodeCount) }
func (sb *Superblock) agSpan() uint64               { return 1 + uint64(sb.AGBitmapBlocks) + sb.AGDataBlocks }
func (sb *Superblock) agHeader(k uint32) uint64     { return sb.agStart() + uint64(k)*sb.agSpan() }
func (sb *Superblock) agBitmap(k uint32, i uint32) uint64 {
	return sb.agHeader(k) + 1 + uint64(i)
}
func (sb *Superblock) agDataStart(k uint32) uint64 {
	return sb.agHeader(k) + 1 + uint64(sb.AGBitmapBlocks)
}
func (sb *Superblock) agDataLen(k uint32) uint64 {
	st := sb.agDataStart(k)
	if st >= sb.TotalBlocks {
		return 0
	}
	return min(sb.AGDataBlocks, sb.TotalBlocks-st)
}
func (sb *Superblock) bitsPerBitmap() uint64 { return uint64(sb.bs()-bmpHdrSize) * 8 }

// agOf maps a data block to (allocation group, index within its data area).
func (sb *Superblock) agOf(pblk uint64) (uint32, uint64, bool) {
	if pblk < sb.agStart() || pblk >= sb.TotalBlocks {
		return 0, 0, false
	}
	rel := pblk - sb.agStart()
	k := rel / sb.agSpan()
	off := rel % sb.agSpan()
	hdr := 1 + uint64(sb.AGBitmapBlocks)
	if off < hdr || k >= uint64(sb.AGCount) {
		return 0, 0, false
	}
	return uint32(k), off - hdr, true
}

// DataBlocks is the number of blocks files can use.
func (sb *Superblock) DataBlocks() uint64 {
	var n uint64
	for k := uint32(0); k < sb.AGCount; k++ {
		n += sb.agDataLen(k)
	}
	return n
}

func (sb *Superblock) encode() []byte {
	b := make([]byte, sb.BlockSize)
	copy(b[0:8], sbMagic)
	le := binary.LittleEndian
	le.PutUint32(b[12:], sb.Version)
	le.PutUint32(b[16:], sb.BlockSize)
	copy(b[20:36], sb.UUID[:])
	copy(b[36:36+MaxLabelLen], sb.Label)
	le.PutUint64(b[68:], sb.TotalBlocks)
	le.PutUint32(b[76:], sb.SlotCount)
	le.PutUint32(b[80:], sb.MaxSlots)
	le.PutUint32(b[84:], sb.JournalBlocks)
	le.PutUint32(b[88:], sb.InodeCount)
	le.PutUint32(b[92:], sb.AGCount)
	le.PutUint64(b[96:], sb.AGDataBlocks)
	le.PutUint32(b[104:], sb.AGBitmapBlocks)
	le.PutUint64(b[108:], uint64(sb.CreatedUnix))
	le.PutUint64(b[116:], sb.Gen)
	le.PutUint32(b[8:], crc32c(b[:sbEncSize]))
	return b
}

// decodeSuperblock validates and decodes a superblock; b must hold at least
// sbEncSize bytes. Any inconsistency is an error: a superblock is trusted
// only if its checksum and its whole layout are valid.
func decodeSuperblock(b []byte) (*Superblock, error) {
	if len(b) < sbEncSize {
		return nil, fmt.Errorf("%w: superblock: short buffer", ErrCorrupt)
	}
	if string(b[0:8]) != sbMagic {
		return nil, fmt.Errorf("%w: superblock: bad magic", ErrNotFormatted)
	}
	le := binary.LittleEndian
	want := le.Uint32(b[8:])
	tmp := make([]byte, sbEncSize)
	copy(tmp, b[:sbEncSize])
	le.PutUint32(tmp[8:], 0)
	if crc32c(tmp) != want {
		return nil, fmt.Errorf("%w: superblock: checksum mismatch", ErrCorrupt)
	}
	sb := &Superblock{
		Version:        le.Uint32(b[12:]),
		BlockSize:      le.Uint32(b[16:]),
		TotalBlocks:    le.Uint64(b[68:]),
		SlotCount:      le.Uint32(b[76:]),
		MaxSlots:       le.Uint32(b[80:]),
		JournalBlocks:  le.Uint32(b[84:]),
		InodeCount:     le.Uint32(b[88:]),
		AGCount:        le.Uint32(b[92:]),
		AGDataBlocks:   le.Uint64(b[96:]),
		AGBitmapBlocks: le.Uint32(b[104:]),
		CreatedUnix:    int64(le.Uint64(b[108:])),
		Gen:            le.Uint64(b[116:]),
	}
	copy(sb.UUID[:], b[20:36])
	lbl := b[36 : 36+MaxLabelLen]
	if i := bytes.IndexByte(lbl, 0); i >= 0 {
		if bytes.IndexFunc(lbl[i:], func(r rune) bool { return r != 0 }) >= 0 {
			return nil, fmt.Errorf("%w: superblock: label padding", ErrCorrupt)
		}
		lbl = lbl[:i]
	}
	if !utf8.Valid(lbl) {
		return nil, fmt.Errorf("%w: superblock: label is not UTF-8", ErrCorrupt)
	}
	sb.Label = string(lbl)
	if err := sb.validate(); err != nil {
		return nil, err
	}
	return sb, nil
}

func validBlockSize(bs uint32) bool {
	return bs >= MinBlockSize && bs <= MaxBlockSize && bs&(bs-1) == 0
}

func (sb *Superblock) validate() error {
	bad := func(f string, a ...any) error {
		return fmt.Errorf("%w: superblock: "+f, append([]any{ErrCorrupt}, a...)...)
	}
	switch {
	case sb.Version < 1 || sb.Version > FormatVersion:
		return bad("unsupported format version %d", sb.Version)
	case !validBlockSize(sb.BlockSize):
		return bad("invalid block size %d", sb.BlockSize)
	case sb.MaxSlots != MaxSlots:
		return bad("max slots %d, want %d", sb.MaxSlots, MaxSlots)
	case sb.SlotCount < 1 || sb.SlotCount > sb.MaxSlots:
		return bad("slot count %d outside 1..%d", sb.SlotCount, sb.MaxSlots)
	case sb.JournalBlocks < 8 || sb.JournalBlocks > 4096:
		return bad("journal blocks %d outside 8..4096", sb.JournalBlocks)
	case int(sb.JournalBlocks)-4 > (int(sb.BlockSize)-jdescHdr)/jdescEntry:
		return bad("journal too large for one descriptor")
	case sb.InodeCount < 16 || sb.InodeCount > 1<<22:
		return bad("inode count %d outside 16..4194304", sb.InodeCount)
	case sb.TotalBlocks == 0 || sb.TotalBlocks > 1<<44:
		return bad("total blocks %d out of range", sb.TotalBlocks)
	case sb.AGBitmapBlocks < 1 || sb.AGBitmapBlocks > uint32(agMaxBitmaps(int(sb.BlockSize))):
		return bad("bitmap blocks per group %d out of range", sb.AGBitmapBlocks)
	case sb.AGDataBlocks < 1 || sb.AGDataBlocks > uint64(sb.AGBitmapBlocks)*sb.bitsPerBitmap():
		return bad("group data blocks %d not covered by %d bitmap blocks", sb.AGDataBlocks, sb.AGBitmapBlocks)
	case sb.AGCount < 1 || sb.AGCount > 1<<28:
		return bad("group count %d out of range", sb.AGCount)
	}
	if sb.agStart() >= sb.TotalBlocks {
		return bad("metadata (%d blocks) exceeds volume (%d blocks)", sb.agStart(), sb.TotalBlocks)
	}
	need := (sb.TotalBlocks - sb.agStart() + sb.agSpan() - 1) / sb.agSpan()
	if need != uint64(sb.AGCount) {
		return bad("group count %d, layout needs %d", sb.AGCount, need)
	}
	if sb.agDataLen(sb.AGCount-1) == 0 {
		return bad("last allocation group has no data blocks")
	}
	return nil
}

// --- common metadata block header ---------------------------------------
//
//	[0:4] type  [4:8] crc32c of the whole block with this field zeroed
//	[8:24] volume UUID  [24:32] own block number  [32:40] write generation
//	[40:48] reserved
//
// A block whose UUID is not the volume's was never written by this format
// ("fresh") and reads as its empty state; this is what makes lazy
// initialization safe. A block with the volume UUID but a wrong type, block
// number or checksum is torn or misdirected and is never trusted.

type blockState int

const (
	blockValid blockState = iota
	blockFresh
	blockCorrupt
)

func sealBlock(b []byte, typ uint32, uuid [16]byte, blkno, gen uint64) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], typ)
	le.PutUint32(b[4:], 0)
	copy(b[8:24], uuid[:])
	le.PutUint64(b[24:], blkno)
	le.PutUint64(b[32:], gen)
	le.PutUint64(b[40:], 0)
	le.PutUint32(b[4:], crc32c(b))
}

func blockGen(b []byte) uint64 { return binary.LittleEndian.Uint64(b[32:]) }

// checkBlock classifies a raw metadata block; the reason is set for corrupt
// blocks.
func checkBlock(b []byte, typ uint32, uuid [16]byte, blkno uint64) (blockState, string) {
	if len(b) < blkHdrSize {
		return blockCorrupt, "short block"
	}
	if !bytes.Equal(b[8:24], uuid[:]) {
		return blockFresh, ""
	}
	le := binary.LittleEndian
	if got := le.Uint32(b[0:]); got != typ {
		return blockCorrupt, fmt.Sprintf("type %#x, want %#x", got, typ)
	}
	if got := le.Uint64(b[24:]); got != blkno {
		return blockCorrupt, fmt.Sprintf("block number %d stored at block %d", got, blkno)
	}
	want := le.Uint32(b[4:])
	le.PutUint32(b[4:], 0)
	got := crc32c(b)
	le.PutUint32(b[4:], want)
	if got != want {
		return blockCorrupt, "checksum mismatch (torn or corrupted write)"
	}
	return blockValid, ""
}
