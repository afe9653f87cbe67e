package vhd

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Sizes and limits from the VHD specification.
const (
	// SectorSize is the VHD sector size; every structure is sector aligned.
	SectorSize = 512
	// FooterSize is the size of the hard disk footer.
	FooterSize = 512
	// HeaderSize is the size of the dynamic disk header.
	HeaderSize = 1024
	// MaxSize is the largest virtual size the format supports (2040 GiB).
	MaxSize = 2040 << 30
	// DefaultBlockSize is the block size of dynamic disks unless
	// Options.BlockSize says otherwise (the spec's and Hyper-V's default).
	DefaultBlockSize = 2 << 20

	// maxCHSSectors is the largest number of sectors CHS geometry can
	// address: 65535 cylinders × 16 heads × 255 sectors per track.
	maxCHSSectors = 65535 * 16 * 255

	footerCookie   = "conectix"
	headerCookie   = "cxsparse"
	formatVersion  = 0x00010000
	featureReserve = 0x2 // "Reserved" feature bit, always set
	fixedDataOff   = ^uint64(0)
	unallocated    = 0xFFFFFFFF

	// CreatorApp is written in the footer of every disk this package
	// creates. It is not one of the creator applications qemu trusts for
	// current_size, so qemu derives the size from CHS geometry — which is
	// why sizes are rounded to the geometry (see RoundSize).
	CreatorApp = "kayo"
	// CreatorVersion is the creator version written in new footers.
	CreatorVersion = 0x00010000
	// CreatorHostOS is the host OS written in new footers (Windows).
	CreatorHostOS = "Wi2k"
)

// ErrCorrupt is wrapped by every error about a damaged or invalid image.
var ErrCorrupt = errors.New("vhd: corrupt image")

// vhdEpoch is the origin of VHD timestamps.
var vhdEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// DiskType is the footer's disk type.
type DiskType uint32

// Disk types. Create makes Fixed and Dynamic disks, CreateChild
// Differencing ones (a dynamic disk whose unwritten sectors read from
// its parent).
const (
	Fixed        DiskType = 2
	Dynamic      DiskType = 3
	Differencing DiskType = 4
)

func (t DiskType) String() string {
	switch t {
	case Fixed:
		return "fixed"
	case Dynamic:
		return "dynamic"
	case Differencing:
		return "differencing"
	}
	return fmt.Sprintf("DiskType(%d)", uint32(t))
}

// UUID is the 16-byte unique id stored in the footer.
type UUID [16]byte

// NewUUID returns a random (version 4) UUID from crypto/rand.
func NewUUID() (UUID, error) {
	var u UUID
	if _, err := rand.Read(u[:]); err != nil {
		return u, fmt.Errorf("vhd: generating UUID: %w", err)
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u, nil
}

func (u UUID) String() string {
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// Geometry is the footer's cylinder/head/sector geometry.
type Geometry struct {
	Cylinders       uint16
	Heads           uint8
	SectorsPerTrack uint8
}

// Sectors is the number of sectors the geometry addresses.
func (g Geometry) Sectors() int64 {
	return int64(g.Cylinders) * int64(g.Heads) * int64(g.SectorsPerTrack)
}

func (g Geometry) String() string {
	return fmt.Sprintf("%d/%d/%d", g.Cylinders, g.Heads, g.SectorsPerTrack)
}

// CHS computes the geometry of a disk of totalSectors sectors exactly as
// the VHD specification's algorithm (appendix "CHS Calculation") does.
// The geometry may address fewer sectors than totalSectors.
func CHS(totalSectors int64) Geometry {
	if totalSectors < 0 {
		totalSectors = 0
	}
	if totalSectors > maxCHSSectors {
		totalSectors = maxCHSSectors
	}
	var spt, heads, cth int64
	if totalSectors >= 65535*16*63 {
		spt = 255
		heads = 16
		cth = totalSectors / spt
	} else {
		spt = 17
		cth = totalSectors / spt
		heads = (cth + 1023) / 1024
		if heads < 4 {
			heads = 4
		}
		if cth >= heads*1024 || heads > 16 {
			spt = 31
			heads = 16
			cth = totalSectors / spt
		}
		if cth >= heads*1024 {
			spt = 63
			heads = 16
			cth = totalSectors / spt
		}
	}
	return Geometry{Cylinders: uint16(cth / heads), Heads: uint8(heads), SectorsPerTrack: uint8(spt)}
}

// RoundSize returns the virtual size, in bytes, of a disk created with the
// requested size:
//
//   - the request is rounded up to a whole sector;
//   - below 65535×16×255 sectors (136,899,993,600 bytes, ~127.5 GiB) it is
//     rounded up to the smallest size S ≥ request whose spec CHS geometry
//     addresses exactly S — so the footer's current size and its geometry
//     agree, and every reader (Hyper-V and disk2vhd use the current size;
//     Virtual PC and qemu, for creators it does not know, use the
//     geometry) sees the same disk. The increase is less than 16×255
//     sectors (< 2 MiB); e.g. 40 GiB becomes 42,951,106,560 bytes
//     (+1.37 MiB), as `qemu-img create -f vpc` does;
//   - from there up to MaxSize the geometry is the maximum 65535/16/255,
//     which qemu also reads as "use the current size", so the size is the
//     sector-rounded request.
//
// It fails for sizes ≤ 0 or whose rounded size exceeds MaxSize.
func RoundSize(requested int64) (int64, error) {
	if requested <= 0 {
		return 0, fmt.Errorf("vhd: size must be positive, got %d", requested)
	}
	if requested > MaxSize {
		return 0, fmt.Errorf("vhd: size %d exceeds the VHD maximum of %d bytes (2040 GiB)", requested, int64(MaxSize))
	}
	t := (requested + SectorSize - 1) / SectorSize
	// Fixed points of CHS are at most 16×255 sectors apart (checked
	// exhaustively below the maximum), and they are not monotonic in the
	// geometry (e.g. 4 heads then 5), so scan sector by sector.
	for t < maxCHSSectors && CHS(t).Sectors() != t {
		t++
	}
	if t*SectorSize > MaxSize {
		return 0, fmt.Errorf("vhd: size %d rounds to %d, beyond the VHD maximum of %d bytes", requested, t*SectorSize, int64(MaxSize))
	}
	return t * SectorSize, nil
}

// Footer is the decoded hard disk footer.
type Footer struct {
	Features       uint32
	Version        uint32
	DataOffset     uint64 // ^0 for fixed disks; the dynamic header's offset otherwise
	Timestamp      uint32 // seconds since 2000-01-01 00:00:00 UTC
	CreatorApp     [4]byte
	CreatorVersion uint32
	CreatorHostOS  [4]byte
	OriginalSize   uint64
	CurrentSize    uint64
	Geometry       Geometry
	DiskType       DiskType
	Checksum       uint32 // as read; Marshal recomputes it
	UUID           UUID
	SavedState     uint8
}

// Time converts the footer timestamp to a time.Time.
func (f *Footer) Time() time.Time {
	return vhdEpoch.Add(time.Duration(f.Timestamp) * time.Second)
}

// Timestamp converts t to a VHD timestamp, clamped to the field's range
// (the zero time and anything before 2000 encode as 0).
func Timestamp(t time.Time) uint32 {
	if t.IsZero() {
		return 0
	}
	s := t.Unix() - vhdEpoch.Unix()
	if s < 0 {
		return 0
	}
	if s > 0xFFFFFFFF {
		return 0xFFFFFFFF
	}
	return uint32(s)
}

// checksum is the spec's one's complement of the byte sum of b, skipping
// the four checksum bytes at skip.
func checksum(b []byte, skip int) uint32 {
	var sum uint32
	for i, c := range b {
		if i >= skip && i < skip+4 {
			continue
		}
		sum += uint32(c)
	}
	return ^sum
}

// Marshal encodes the footer into 512 bytes with cookie and a fresh
// checksum (f.Checksum is updated).
func (f *Footer) Marshal() []byte {
	b := make([]byte, FooterSize)
	be := binary.BigEndian
	copy(b[0:8], footerCookie)
	be.PutUint32(b[8:], f.Features)
	be.PutUint32(b[12:], f.Version)
	be.PutUint64(b[16:], f.DataOffset)
	be.PutUint32(b[24:], f.Timestamp)
	copy(b[28:32], f.CreatorApp[:])
	be.PutUint32(b[32:], f.CreatorVersion)
	copy(b[36:40], f.CreatorHostOS[:])
	be.PutUint64(b[40:], f.OriginalSize)
	be.PutUint64(b[48:], f.CurrentSize)
	be.PutUint16(b[56:], f.Geometry.Cylinders)
	b[58] = f.Geometry.Heads
	b[59] = f.Geometry.SectorsPerTrack
	be.PutUint32(b[60:], uint32(f.DiskType))
	copy(b[68:84], f.UUID[:])
	b[84] = f.SavedState
	f.Checksum = checksum(b, 64)
	be.PutUint32(b[64:], f.Checksum)
	return b
}

// ParseFooter decodes and validates a footer: it must be at least 512
// bytes, start with the "conectix" cookie and carry a correct checksum.
// Field values are not judged here (see Open and Check).
func ParseFooter(b []byte) (*Footer, error) {
	if len(b) < FooterSize {
		return nil, fmt.Errorf("%w: footer is %d bytes, want %d", ErrCorrupt, len(b), FooterSize)
	}
	b = b[:FooterSize]
	if string(b[0:8]) != footerCookie {
		return nil, fmt.Errorf("%w: footer cookie is %q, want %q", ErrCorrupt, b[0:8], footerCookie)
	}
	be := binary.BigEndian
	f := &Footer{
		Features:       be.Uint32(b[8:]),
		Version:        be.Uint32(b[12:]),
		DataOffset:     be.Uint64(b[16:]),
		Timestamp:      be.Uint32(b[24:]),
		CreatorVersion: be.Uint32(b[32:]),
		OriginalSize:   be.Uint64(b[40:]),
		CurrentSize:    be.Uint64(b[48:]),
		Geometry: Geometry{
			Cylinders:       be.Uint16(b[56:]),
			Heads:           b[58],
			SectorsPerTrack: b[59],
		},
		DiskType:   DiskType(be.Uint32(b[60:])),
		Checksum:   be.Uint32(b[64:]),
		SavedState: b[84],
	}
	copy(f.CreatorApp[:], b[28:32])
	copy(f.CreatorHostOS[:], b[36:40])
	copy(f.UUID[:], b[68:84])
	if want := checksum(b, 64); want != f.Checksum {
		return nil, fmt.Errorf("%w: footer checksum is %#08x, computed %#08x", ErrCorrupt, f.Checksum, want)
	}
	return f, nil
}

// validate judges the footer's fields for a file of fileSize bytes.
func (f *Footer) validate() error {
	if f.Version>>16 != 1 {
		return fmt.Errorf("%w: footer format version %#08x, want major version 1", ErrCorrupt, f.Version)
	}
	switch f.DiskType {
	case Fixed, Dynamic, Differencing:
	default:
		return fmt.Errorf("%w: unknown disk type %d", ErrCorrupt, uint32(f.DiskType))
	}
	if f.CurrentSize == 0 || f.CurrentSize%SectorSize != 0 || f.CurrentSize > MaxSize {
		return fmt.Errorf("%w: current size %d is not a positive multiple of %d up to %d", ErrCorrupt, f.CurrentSize, SectorSize, int64(MaxSize))
	}
	if f.SavedState != 0 {
		return fmt.Errorf("vhd: disk is in a saved state (saved state flag %d)", f.SavedState)
	}
	return nil
}

// Header is the decoded dynamic disk header. Parent fields (used only by
// differencing disks) are kept verbatim so a rewrite preserves them.
type Header struct {
	DataOffset      uint64
	TableOffset     uint64
	Version         uint32
	MaxTableEntries uint32
	BlockSize       uint32
	Checksum        uint32 // as read; Marshal recomputes it
	ParentUUID      UUID
	ParentTimestamp uint32
	rest            [HeaderSize - 60]byte // bytes 60..1023, verbatim
}

// Marshal encodes the header into 1024 bytes with cookie and a fresh
// checksum (h.Checksum is updated).
func (h *Header) Marshal() []byte {
	b := make([]byte, HeaderSize)
	be := binary.BigEndian
	copy(b[0:8], headerCookie)
	be.PutUint64(b[8:], h.DataOffset)
	be.PutUint64(b[16:], h.TableOffset)
	be.PutUint32(b[24:], h.Version)
	be.PutUint32(b[28:], h.MaxTableEntries)
	be.PutUint32(b[32:], h.BlockSize)
	copy(b[40:56], h.ParentUUID[:])
	be.PutUint32(b[56:], h.ParentTimestamp)
	copy(b[60:], h.rest[:])
	h.Checksum = checksum(b, 36)
	be.PutUint32(b[36:], h.Checksum)
	return b
}

// ParseHeader decodes and validates a dynamic disk header: at least 1024
// bytes, the "cxsparse" cookie, a correct checksum, format version 1.x and
// a power-of-two block size of at least one sector.
func ParseHeader(b []byte) (*Header, error) {
	if len(b) < HeaderSize {
		return nil, fmt.Errorf("%w: dynamic header is %d bytes, want %d", ErrCorrupt, len(b), HeaderSize)
	}
	b = b[:HeaderSize]
	if string(b[0:8]) != headerCookie {
		return nil, fmt.Errorf("%w: dynamic header cookie is %q, want %q", ErrCorrupt, b[0:8], headerCookie)
	}
	be := binary.BigEndian
	h := &Header{
		DataOffset:      be.Uint64(b[8:]),
		TableOffset:     be.Uint64(b[16:]),
		Version:         be.Uint32(b[24:]),
		MaxTableEntries: be.Uint32(b[28:]),
		BlockSize:       be.Uint32(b[32:]),
		Checksum:        be.Uint32(b[36:]),
		ParentTimestamp: be.Uint32(b[56:]),
	}
	copy(h.ParentUUID[:], b[40:56])
	copy(h.rest[:], b[60:])
	if want := checksum(b, 36); want != h.Checksum {
		return nil, fmt.Errorf("%w: dynamic header checksum is %#08x, computed %#08x", ErrCorrupt, h.Checksum, want)
	}
	if h.Version>>16 != 1 {
		return nil, fmt.Errorf("%w: dynamic header version %#08x, want major version 1", ErrCorrupt, h.Version)
	}
	if h.BlockSize < SectorSize || h.BlockSize&(h.BlockSize-1) != 0 {
		return nil, fmt.Errorf("%w: block size %d is not a power of two of at least %d", ErrCorrupt, h.BlockSize, SectorSize)
	}
	return h, nil
}

// bitmapSize is the size of a block's sector bitmap, padded to a sector.
func bitmapSize(blockSize uint32) int64 {
	bits := int64(blockSize) / SectorSize
	return ((bits+7)/8 + SectorSize - 1) / SectorSize * SectorSize
}

// batBytes is the on-disk size of a BAT of n entries, padded to a sector.
func batBytes(n uint32) int64 {
	return (int64(n)*4 + SectorSize - 1) / SectorSize * SectorSize
}
