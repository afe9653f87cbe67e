package kayofs

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// The storage-validation area: the spare records 192..255 of the
// version-2 lease area (leaserec.go uses 0..131 of its 256, leasedom.go
// 0..191 on version 4), one per node
// slot. A node agent's storage probe writes its stamp into its slot's
// record and reads the others', proving every node writes and reads the
// same LUN. Nothing else reads them, so volumes formatted before the area
// existed hold it already (records never written read as empty: another
// UUID, or zeros), and a version-1 volume has none (ErrNoProbeArea).
const (
	recProbe0 = 192
	rtProbe   = 0x4b4c0006
	// probeNodeMax is the longest node name a stamp holds.
	probeNodeMax = 255
)

// ErrNoProbeArea: the volume's format (version 1) has no lease area.
var ErrNoProbeArea = errors.New("kayofs: volume format version 1 has no storage-validation area (reformat as version 2)")

// ProbeStamp is one node's mark in the storage-validation area.
type ProbeStamp struct {
	Slot     int
	Node     string
	Seq      uint64 // grows with each of the node's probes
	UnixNano int64  // when the node wrote it, by its clock
}

// SuperblockOf reads the superblock of the device or image at path,
// opened read-only (a host listing its LUNs writes nothing), with the
// device's size. A device without a Kayo FS is ErrNotFormatted.
func SuperblockOf(path string) (*Superblock, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	size, err := f.Seek(0, 2)
	if err != nil {
		return nil, 0, err
	}
	sb, err := ReadSuperblock(&roDevice{f: f, size: size})
	return sb, size, err
}

// roDevice is a read-only Device over an open file.
type roDevice struct {
	f    *os.File
	size int64
}

func (d *roDevice) ReadAt(p []byte, off int64) (int, error) { return d.f.ReadAt(p, off) }
func (d *roDevice) WriteAt([]byte, int64) (int, error) {
	return 0, fmt.Errorf("%w: read-only device", ErrInvalid)
}
func (d *roDevice) Sync() error { return nil }
func (d *roDevice) Size() int64 { return d.size }

// probeArea opens the area of the volume on path with direct I/O (hosts
// with separate kernels must see each other's stamps, not a page cache).
func probeArea(path string) (*os.File, *Superblock, int64, error) {
	sb, _, err := SuperblockOf(path)
	if err != nil {
		return nil, nil, 0, err
	}
	if sb.leaseBlocks() == 0 {
		return nil, nil, 0, ErrNoProbeArea
	}
	f, err := openDirect(path, os.O_SYNC)
	if err != nil {
		return nil, nil, 0, err
	}
	return f, sb, int64(sb.leaseStart())*int64(sb.BlockSize) + recProbe0*recSize, nil
}

// WriteProbeStamp writes st into slot st.Slot of the validation area of
// the volume on path, with one aligned direct write.
func WriteProbeStamp(path string, st ProbeStamp) error {
	if st.Slot < 0 || st.Slot >= MaxSlots || st.Node == "" || len(st.Node) > probeNodeMax {
		return fmt.Errorf("%w: probe stamp slot %d node %q", ErrInvalid, st.Slot, st.Node)
	}
	f, sb, base, err := probeArea(path)
	if err != nil {
		return err
	}
	defer f.Close()
	b := alignedBuf(recSize)
	le.PutUint64(b[24:], st.Seq)
	le.PutUint64(b[32:], uint64(st.UnixNano))
	b[40] = byte(len(st.Node))
	copy(b[41:], st.Node)
	sealRec(b, rtProbe, sb.UUID, recCRCBytes)
	if _, err := f.WriteAt(b, base+int64(st.Slot)*recSize); err != nil {
		return fmt.Errorf("kayofs: writing probe stamp of slot %d: %w", st.Slot, err)
	}
	return nil
}

// ReadProbeStamps returns the stamps written in the validation area of
// the volume on path, by slot; a torn record is left out.
func ReadProbeStamps(path string) ([]ProbeStamp, error) {
	f, sb, base, err := probeArea(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := alignedBuf(MaxSlots * recSize)
	if _, err := f.ReadAt(b, base); err != nil {
		return nil, fmt.Errorf("kayofs: reading the probe stamps: %w", err)
	}
	var out []ProbeStamp
	for s := 0; s < MaxSlots; s++ {
		r := b[s*recSize : (s+1)*recSize]
		if fresh, err := openRec(r, rtProbe, sb.UUID, recCRCBytes); fresh || err != nil {
			continue
		}
		n := int(r[40])
		out = append(out, ProbeStamp{Slot: s, Node: strings.Clone(string(r[41 : 41+n])),
			Seq: le.Uint64(r[24:]), UnixNano: int64(le.Uint64(r[32:]))})
	}
	return out, nil
}
