package kayofs

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/lunprobe"
)

// FormatOptions control Format.
type FormatOptions struct {
	BlockSize  int    // 4096..65536, power of two; default 4096
	Slots      int    // node slots 1..64; default 16
	Label      string // ≤ 32 bytes
	Force      bool   // overwrite a recognizable file system
	InodeCount int    // default scales with size (256..65536)
	// Size is the part of the device the volume covers (0: all of it), so
	// it can later Grow into the rest.
	Size int64
	// Version: 0 for FormatVersion; 2 for a volume older binaries (which
	// lock it as one) can mount too.
	Version int
}

func validLabel(l string) error {
	if len(l) > MaxLabelLen || !utf8.ValidString(l) || bytes.IndexByte([]byte(l), 0) >= 0 {
		return fmt.Errorf("%w: label %q must be at most %d bytes of UTF-8", ErrInvalid, l, MaxLabelLen)
	}
	return nil
}

// layout computes a superblock for a device size.
func layout(size int64, o FormatOptions) (*Superblock, error) {
	bs := uint32(o.BlockSize)
	if !validBlockSize(bs) {
		return nil, fmt.Errorf("%w: block size %d: must be a power of two in %d..%d", ErrInvalid, o.BlockSize, MinBlockSize, MaxBlockSize)
	}
	if o.Slots < 1 || o.Slots > MaxSlots {
		return nil, fmt.Errorf("%w: node slots %d: must be 1..%d", ErrInvalid, o.Slots, MaxSlots)
	}
	if err := validLabel(o.Label); err != nil {
		return nil, err
	}
	ver := uint32(FormatVersion)
	if o.Version != 0 {
		if o.Version < 2 || o.Version > FormatVersion {
			return nil, fmt.Errorf("%w: format version %d: must be 2..%d", ErrInvalid, o.Version, FormatVersion)
		}
		ver = uint32(o.Version)
	}
	sb := &Superblock{
		Version:       ver,
		BlockSize:     bs,
		Label:         o.Label,
		TotalBlocks:   uint64(size) / uint64(bs),
		SlotCount:     uint32(o.Slots),
		MaxSlots:      MaxSlots,
		JournalBlocks: uint32(max(16, 262144/int(bs))),
		CreatedUnix:   time.Now().Unix(),
		Gen:           1,
	}
	if sb.TotalBlocks > 1<<44 {
		return nil, fmt.Errorf("%w: device of %d bytes is too large", ErrInvalid, size)
	}
	ic := o.InodeCount
	if ic == 0 {
		ic = int(min(max(size/(64<<20), 256), 65536))
	}
	if ic < 16 || ic > 1<<22 {
		return nil, fmt.Errorf("%w: inode count %d: must be 16..%d", ErrInvalid, ic, 1<<22)
	}
	per := sb.direntsPerBlock()
	if sb.DirDomains() {
		per = inoChunk // whole runs (direntRunBlocks)
	}
	sb.InodeCount = uint32((ic + per - 1) / per * per)
	start := sb.agStart()
	if sb.TotalBlocks < start+64 {
		return nil, fmt.Errorf("%w: device of %d bytes is too small: metadata alone needs %d blocks of %d bytes", ErrInvalid, size, start+64, bs)
	}
	span := sb.TotalBlocks - start
	bits := sb.bitsPerBitmap()
	agData := (span + 63) / 64 // aim for about 64 groups
	agData = max(agData, 1024)
	agData = min(agData, bits*uint64(agMaxBitmaps(int(bs))))
	nbmp := (agData + bits - 1) / bits
	for {
		sb.AGDataBlocks = min(agData, span-1-nbmp)
		sb.AGBitmapBlocks = uint32(nbmp)
		full := 1 + nbmp + sb.AGDataBlocks
		sb.AGCount = uint32((span + full - 1) / full)
		if sb.agDataLen(sb.AGCount-1) > 0 {
			break
		}
		// the tail is too short for a group's metadata: leave it unused
		sb.TotalBlocks = sb.agHeader(sb.AGCount - 1)
		span = sb.TotalBlocks - start
	}
	if err := sb.validate(); err != nil {
		return nil, fmt.Errorf("kayofs: internal layout error: %w", err)
	}
	return sb, nil
}

// Format writes a new Kayo FS. It refuses a device that is mounted anywhere,
// and one holding a recognizable file system unless o.Force. Only headers
// are written (a few hundred KiB plus the wiped signature areas): journals,
// slot records, allocation groups and the inode table are initialized
// lazily, recognized by the volume UUID and generation numbers.
func Format(dev Device, o FormatOptions) (*Superblock, error) {
	if o.BlockSize == 0 {
		o.BlockSize = 4096
	}
	if o.Slots == 0 {
		o.Slots = 16
	}
	size := dev.Size()
	if o.Size > 0 {
		if o.Size > size {
			return nil, fmt.Errorf("%w: format size %d exceeds the device (%d bytes)", ErrInvalid, o.Size, size)
		}
		size = o.Size
	}
	sb, err := layout(size, o)
	if err != nil {
		return nil, err
	}
	if _, err := rand.Read(sb.UUID[:]); err != nil {
		return nil, err
	}
	sb.UUID[6] = sb.UUID[6]&0x0f | 0x40
	sb.UUID[8] = sb.UUID[8]&0x3f | 0x80
	if pd, ok := dev.(PathDevice); ok {
		cl, err := newOFD(pd.Path())
		if err != nil {
			return nil, err
		}
		lk := newLockMgr(cl)
		defer lk.close()
		if err := lk.lock(keySlotTable, true); err != nil {
			return nil, err
		}
		defer lk.unlock(keySlotTable, true)
		for s := 0; s < MaxSlots; s++ {
			live, err := probeLive(lk, s)
			if err != nil {
				return nil, err
			}
			if live {
				return nil, fmt.Errorf("%w: slot %d is held by a live node; unmount it everywhere first", ErrMounted, s)
			}
		}
	}
	fs, err := Probe(dev)
	if err != nil {
		return nil, err
	}
	if fs == "kayofs" {
		if old, err := ReadSuperblock(dev); err == nil {
			for s := 0; s < int(old.SlotCount); s++ {
				if e, err := readSlot(dev, old, s); err == nil && e.State == SlotDetached {
					return nil, fmt.Errorf("%w: slot %d is mounted by %s; unmount it everywhere first", ErrMounted, s, e.Node)
				} else if err == nil && e.State == SlotMounted && !o.Force {
					return nil, fmt.Errorf("%w: slot %d is recorded as mounted by %s (node crashed?); recover it or force", ErrMounted, s, e.Node)
				}
			}
		}
	}
	if fs != "" && !o.Force {
		return nil, fmt.Errorf("%w: found %s; set force to overwrite it", ErrExistingFS, fs)
	}
	if err := wipeSignatures(dev); err != nil {
		return nil, err
	}
	bs := sb.bs()
	// namespace: header, root entry, root inode
	ns := make([]byte, bs)
	encodeNSHeader(ns, nsHeader{hw: rootIno + 1, gen: 1, nextGen: 2, dirs: 1})
	sealBlock(ns, tNSHeader, sb.UUID, sb.nsBlock(), 1)
	dblk, idx := sb.direntBlock(rootIno)
	de := make([]byte, bs)
	encodeDirent(de, idx, dirent{typ: typeDir, parent: rootIno, gen: 1, name: "$root"})
	sealBlock(de, tDirent, sb.UUID, dblk, 1)
	ib := make([]byte, bs)
	encodeInode(ib, &inode{typ: typeDir, gen: 1, mtime: time.Now().UnixNano()})
	sealBlock(ib, tInode, sb.UUID, sb.inodeBlock(rootIno), 1)
	for _, w := range []struct {
		blk uint64
		b   []byte
	}{{sb.nsBlock(), ns}, {dblk, de}, {sb.inodeBlock(rootIno), ib}} {
		if err := writeBlock(dev, bs, w.blk, w.b); err != nil {
			return nil, err
		}
	}
	if err := dev.Sync(); err != nil {
		return nil, err
	}
	if err := writeSuperblocks(dev, sb); err != nil {
		return nil, err
	}
	return sb, nil
}

// wipeSignatures zeroes the areas other file systems keep their
// superblocks, labels and footers in (the first and last MiB, the windows
// lunprobe reads), writing only non-zero chunks so a fresh sparse image
// stays sparse.
func wipeSignatures(dev Device) error {
	size := dev.Size()
	const chunk = 64 << 10
	zero := make([]byte, chunk)
	buf := make([]byte, chunk)
	wipe := func(from, to int64) error {
		for off := from; off < to; off += chunk {
			n := min(int64(chunk), to-off)
			if _, err := dev.ReadAt(buf[:n], off); err != nil {
				return err
			}
			if !bytes.Equal(buf[:n], zero[:n]) {
				if _, err := dev.WriteAt(zero[:n], off); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := wipe(0, min(size, 1<<20)); err != nil {
		return err
	}
	tail := max(size-lunprobe.Window, lunprobe.Window)
	return wipe(tail, size)
}

// Probe names what the device carries: "kayofs", the known signatures
// lunprobe finds in its first and last MiB (joined by commas, e.g. "gpt"
// or "ext4"), or "" for none.
func Probe(dev Device) (string, error) {
	if _, err := ReadSuperblock(dev); err == nil {
		return "kayofs", nil
	}
	b := make([]byte, len(sbMagic))
	if _, err := dev.ReadAt(b, 0); err == nil && string(b) == sbMagic {
		return "kayofs", nil // damaged Kayo FS
	}
	ends, err := lunprobe.Read(dev, dev.Size())
	if err != nil {
		return "", fmt.Errorf("kayofs: probing: %w", err)
	}
	return lunprobe.JoinNames(lunprobe.Probe(ends)), nil
}
