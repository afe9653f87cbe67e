package kayofs

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// The lease area (format version 2; LeaseAreaBytes from block
// Superblock.leaseStart) is a row of 4 KiB records whose content is their
// first bytes, sealed by a CRC32C; every record is written whole by one
// aligned direct write, and the content of all but the owners table fits
// the first 512-byte sector, which a LUN writes atomically:
//
//	0 .. 63     delta lease of host id h (sanlock-style: the host rewrites
//	            it every renewal; gen, timestamp, counter, node name)
//	64, 65      the slot owners table (slot → host id, host gen), two
//	            copies written alternately, newest valid wins; written only
//	            under the metadata lease
//	66          metadata lease leader (lver, owner host, owner gen, free)
//	67          metadata lease request (any waiting host rewrites it)
//	68 .. 131   metadata lease Disk Paxos blocks, one per host id
//
// A record holding another volume's UUID, or zeros, was never written for
// this volume and reads as its empty state.
const (
	recSize     = 4096
	recOwners   = 64
	recLeader   = 66
	recRequest  = 67
	recDblock0  = 68
	leaseRecs   = recDblock0 + MaxSlots
	recCRCBytes = 512

	rtDelta   uint32 = 0x4b4c0001
	rtOwners  uint32 = 0x4b4c0002
	rtLeader  uint32 = 0x4b4c0003
	rtRequest uint32 = 0x4b4c0004
	rtDblock  uint32 = 0x4b4c0005
)

func recDelta(h int) int  { return h }
func recDblock(h int) int { return recDblock0 + h }

var le = binary.LittleEndian

// sealRec stamps type, UUID and CRC over the first n bytes.
func sealRec(b []byte, typ uint32, uuid [16]byte, n int) {
	le.PutUint32(b[0:], typ)
	le.PutUint32(b[4:], 0)
	copy(b[8:24], uuid[:])
	le.PutUint32(b[4:], crc32c(b[:n]))
}

// openRec checks a record: fresh (never written for this volume) reads as
// zero fields; a torn or foreign-typed one is an error.
func openRec(b []byte, typ uint32, uuid [16]byte, n int) (fresh bool, err error) {
	if !bytes.Equal(b[8:24], uuid[:]) {
		return true, nil
	}
	if le.Uint32(b[0:]) != typ {
		return false, fmt.Errorf("%w: lease record type %#x, want %#x", ErrCorrupt, le.Uint32(b[0:]), typ)
	}
	want := le.Uint32(b[4:])
	c := make([]byte, n)
	copy(c, b[:n])
	le.PutUint32(c[4:], 0)
	if crc32c(c) != want {
		return false, fmt.Errorf("%w: lease record checksum", ErrCorrupt)
	}
	return false, nil
}

// deltaRec is a host's delta lease. Timestamp 0 is a free lease.
type deltaRec struct {
	Gen, Stamp, Counter uint64
	Node                string
}

func (r deltaRec) free() bool { return r.Stamp == 0 }

func encDelta(b []byte, uuid [16]byte, r deltaRec) {
	clear(b[:recSize])
	le.PutUint64(b[24:], r.Gen)
	le.PutUint64(b[32:], r.Stamp)
	le.PutUint64(b[40:], r.Counter)
	putNodeName(b[48:], r.Node)
	sealRec(b, rtDelta, uuid, recCRCBytes)
}

func decDelta(b []byte, uuid [16]byte) (deltaRec, error) {
	fresh, err := openRec(b, rtDelta, uuid, recCRCBytes)
	if fresh || err != nil {
		return deltaRec{}, err
	}
	n, err := getNodeName(b[48:])
	if err != nil {
		return deltaRec{}, fmt.Errorf("%w: host lease: %v", ErrCorrupt, err)
	}
	return deltaRec{Gen: le.Uint64(b[24:]), Stamp: le.Uint64(b[32:]), Counter: le.Uint64(b[40:]), Node: n}, nil
}

// leaderRec is the metadata lease's leader record.
type leaderRec struct {
	Lver  uint64
	Owner int // host id + 1; 0: never owned
	Gen   uint64
	Free  bool // released by its owner
}

func encLeader(b []byte, uuid [16]byte, r leaderRec) {
	clear(b[:recSize])
	le.PutUint64(b[24:], r.Lver)
	le.PutUint64(b[32:], uint64(r.Owner))
	le.PutUint64(b[40:], r.Gen)
	if r.Free {
		le.PutUint64(b[48:], 1)
	}
	sealRec(b, rtLeader, uuid, recCRCBytes)
}

func decLeader(b []byte, uuid [16]byte) (leaderRec, error) {
	fresh, err := openRec(b, rtLeader, uuid, recCRCBytes)
	if fresh || err != nil {
		return leaderRec{}, err
	}
	o := le.Uint64(b[32:])
	if o > MaxSlots {
		return leaderRec{}, fmt.Errorf("%w: lease leader owner %d", ErrCorrupt, o)
	}
	return leaderRec{Lver: le.Uint64(b[24:]), Owner: int(o), Gen: le.Uint64(b[40:]), Free: le.Uint64(b[48:]) == 1}, nil
}

// dblock is one host's Disk Paxos block for lease version Lver: the
// highest ballot it joined (Mbal), the ballot of the value it accepted
// (Bal) and that value (Inp host id + 1, Inp2 its generation).
type dblock struct {
	Mbal, Bal  uint64
	Inp        int
	Inp2, Lver uint64
}

func encDblock(b []byte, uuid [16]byte, d dblock) {
	clear(b[:recSize])
	le.PutUint64(b[24:], d.Mbal)
	le.PutUint64(b[32:], d.Bal)
	le.PutUint64(b[40:], uint64(d.Inp))
	le.PutUint64(b[48:], d.Inp2)
	le.PutUint64(b[56:], d.Lver)
	sealRec(b, rtDblock, uuid, recCRCBytes)
}

func decDblock(b []byte, uuid [16]byte) (dblock, error) {
	fresh, err := openRec(b, rtDblock, uuid, recCRCBytes)
	if fresh || err != nil {
		return dblock{}, err
	}
	in := le.Uint64(b[40:])
	if in > MaxSlots {
		return dblock{}, fmt.Errorf("%w: paxos block value %d", ErrCorrupt, in)
	}
	return dblock{Mbal: le.Uint64(b[24:]), Bal: le.Uint64(b[32:]), Inp: int(in), Inp2: le.Uint64(b[48:]), Lver: le.Uint64(b[56:])}, nil
}

// slotOwner: which host (id + 1, 0 for none) and generation owns a slot.
type slotOwner struct {
	Host int
	Gen  uint64
}

const ownersBytes = 32 + MaxSlots*16

func encOwners(b []byte, uuid [16]byte, seq uint64, t *[MaxSlots]slotOwner) {
	clear(b[:recSize])
	le.PutUint64(b[24:], seq)
	for s, o := range t {
		le.PutUint64(b[32+16*s:], uint64(o.Host))
		le.PutUint64(b[40+16*s:], o.Gen)
	}
	sealRec(b, rtOwners, uuid, ownersBytes)
}

func decOwners(b []byte, uuid [16]byte, t *[MaxSlots]slotOwner) (uint64, error) {
	fresh, err := openRec(b, rtOwners, uuid, ownersBytes)
	if fresh || err != nil {
		*t = [MaxSlots]slotOwner{}
		return 0, err
	}
	for s := range t {
		h := le.Uint64(b[32+16*s:])
		if h > MaxSlots {
			return 0, fmt.Errorf("%w: slot owner %d", ErrCorrupt, h)
		}
		t[s] = slotOwner{Host: int(h), Gen: le.Uint64(b[40+16*s:])}
	}
	return le.Uint64(b[24:]), nil
}
