package kayofs

import (
	"fmt"
	"sync/atomic"
	"time"
)

// Lease domains of the on-disk lease manager (format version 4). Version 3
// split the cluster locks into domains (LockDomain) but the on-disk leases
// still mapped every key onto one metadata lease, so two hosts writing
// their own files took turns on it. Version 4 gives each lease domain its
// own Disk Paxos lease in the same 1 MiB lease area (192..255 stay the
// storage-validation area, probearea.go):
//
//	0 .. 63     delta lease of host id h (as version 2)
//	64, 65      the slot owners table (as version 2), written only under
//	            the namespace domain's lease
//	66 .. 129   host h's Disk Paxos blocks: one 64-byte slot per domain
//	            (dslot), each inside one sector with its own CRC, so a
//	            torn write of the record leaves every slot old or new
//	130 .. 160  leader record of domain d (as version 2's leader)
//	161 .. 191  request record of domain d (as version 2's request)
//
// Only host h writes record 66+h (the mount keeps its image, dbuf), so the
// blocks of different domains share a record without read-modify-write
// races between hosts. A leader record is written by the winner of its
// domain's ballot and its releasing holder only, a request record by any
// waiter: each domain has its own, so no write of one domain can lose
// another's.
//
// Domains (leaseDomainOf): 0 the slot table and namespace; 1..15 the runs
// of inodes (LockDomain's 64 run domains folded, so the home runs of up
// to 15 slots never share one); 16..29 allocation groups, four
// neighbouring groups per domain and the rest on the last (monotone, so
// ascending group order is ascending domain order and the lock order
// holds; Format makes about 64 groups and a node starts in group
// slot × groups / slots); 30 recovery, taken last by BeginRecovery so two
// hosts holding different domains never replay one dead slot's journal at
// once.
const (
	leaseDomains   = 31
	ldNS           = 0
	ldInodeFirst   = 1
	ldInodeCount   = 15
	ldGroupFirst   = ldInodeFirst + ldInodeCount
	ldGroupCount   = 14
	ldGroupSpan    = 4
	ldRecovery     = ldGroupFirst + ldGroupCount
	recHostDblock0 = 66
	recLeader4     = recHostDblock0 + MaxSlots
	recRequest4    = recLeader4 + leaseDomains
	dslotSize      = 64
)

// The version-4 layout must end where the storage-validation area starts.
var _ = [1]struct{}{}[recRequest4+leaseDomains-recProbe0]

// leaseDomainOf maps a lock key onto its version-4 lease domain.
func leaseDomainOf(k LockKey) int {
	d := LockDomain(k)
	switch {
	case d >= keyDomainBase && d < keyDomainBase+MaxSlots:
		return ldInodeFirst + int(d-keyDomainBase)%ldInodeCount
	case d >= keyAGBase && d < keyInodeBase:
		return ldGroupFirst + int(min((d-keyAGBase)/ldGroupSpan, ldGroupCount-1))
	}
	// the slot table, the namespace and any other key: the namespace
	// domain, first in the lock order
	return ldNS
}

// dlease is one lease domain's state in a mount (guarded by m.mu).
type dlease struct {
	d         int
	held      bool
	refs      int
	acquiring bool
	lver      uint64
	lastReq   []byte
	mbal      uint64
	heldSince time.Time    // when this mount last won the lease
	checked   time.Time    // when maybeYield last read the request record
	lastUse   time.Time    // when its last hold in this mount ended
	yielded   atomic.Int64 // since epoch: when it last released it to a host that asked
	touched   bool         // this mount ran a ballot for it (freeStale looks at it)
}

// Record numbers of domain d's leader and request.
func (m *DiskLeases) recLeaderOf(d int) int {
	if m.perDomain {
		return recLeader4 + d
	}
	return recLeader
}

func (m *DiskLeases) recRequestOf(d int) int {
	if m.perDomain {
		return recRequest4 + d
	}
	return recRequest
}

func encDslot(b []byte, uuid [16]byte, d int, x dblock) {
	clear(b[:dslotSize])
	le.PutUint32(b[4:], uint32(d))
	copy(b[8:24], uuid[:])
	le.PutUint64(b[24:], x.Mbal)
	le.PutUint64(b[32:], x.Bal)
	le.PutUint64(b[40:], uint64(x.Inp))
	le.PutUint64(b[48:], x.Inp2)
	le.PutUint64(b[56:], x.Lver)
	le.PutUint32(b[0:], crc32c(b[4:dslotSize]))
}

// decDslot: a slot never written for this volume reads as empty; a torn or
// misplaced one is an error.
func decDslot(b []byte, uuid [16]byte, d int) (dblock, error) {
	if string(b[8:24]) != string(uuid[:]) {
		return dblock{}, nil
	}
	if crc32c(b[4:dslotSize]) != le.Uint32(b[0:]) {
		return dblock{}, fmt.Errorf("%w: paxos block checksum (domain %d)", ErrCorrupt, d)
	}
	if got := int(le.Uint32(b[4:])); got != d {
		return dblock{}, fmt.Errorf("%w: paxos block of domain %d in domain %d's place", ErrCorrupt, got, d)
	}
	in := le.Uint64(b[40:])
	if in > MaxSlots {
		return dblock{}, fmt.Errorf("%w: paxos block value %d", ErrCorrupt, in)
	}
	return dblock{Mbal: le.Uint64(b[24:]), Bal: le.Uint64(b[32:]), Inp: int(in), Inp2: le.Uint64(b[48:]), Lver: le.Uint64(b[56:])}, nil
}

// loadDbuf reads this host's own block record (version 4): a ballot
// rewrites the whole record, so the other domains' blocks a previous
// incarnation left must be kept, never zeroed, and its ballot numbers
// are where this one's start.
func (m *DiskLeases) loadDbuf() error {
	b, err := m.readRecs(recHostDblock0+m.host, 1)
	if err != nil {
		return err
	}
	for d := 0; d < leaseDomains; d++ {
		s := b[d*dslotSize : (d+1)*dslotSize]
		x, err := decDslot(s, m.uuid, d)
		if err != nil || x.Mbal == 0 {
			clear(s) // torn or never written: an empty slot
			continue
		}
		m.doms[d].mbal = x.Mbal // ballots of this host id only go up

	}
	m.dbuf = b
	return nil
}

// writeDblock writes this host's Disk Paxos block of domain d.
func (m *DiskLeases) writeDblock(d int, x dblock) error {
	if !m.perDomain {
		w := alignedBuf(recSize)
		encDblock(w, m.uuid, x)
		return m.writeRec(recDblock(m.host), w)
	}
	m.dbMu.Lock()
	defer m.dbMu.Unlock()
	encDslot(m.dbuf[d*dslotSize:], m.uuid, d, x)
	return m.writeRec(recHostDblock0+m.host, m.dbuf)
}

// readDblocks reads every host's block of domain d; a torn one (a host
// that never finished a write) reads as nil error with zero Mbal.
func (m *DiskLeases) readDblocks(d int) ([MaxSlots]dblock, error) {
	var out [MaxSlots]dblock
	first, off := recDblock0, 0
	if m.perDomain {
		first, off = recHostDblock0, d*dslotSize
	}
	b, err := m.readRecs(first, MaxSlots)
	if err != nil {
		return out, err
	}
	for q := 0; q < MaxSlots; q++ {
		r := b[q*recSize:]
		var x dblock
		if m.perDomain {
			x, err = decDslot(r[off:], m.uuid, d)
		} else {
			x, err = decDblock(r, m.uuid)
		}
		if err == nil {
			out[q] = x
		}
	}
	return out, nil
}

// domainOf maps k onto this mount's lease: its domain on a version-4
// volume, the one metadata lease before.
func (m *DiskLeases) domainOf(k LockKey) *dlease {
	if !m.perDomain {
		return m.doms[0]
	}
	return m.doms[leaseDomainOf(k)]
}

// heldDomains lists the domains this mount holds (test and log helper;
// caller holds nothing).
func (m *DiskLeases) heldDomains() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int
	for _, l := range m.doms {
		if l.held {
			out = append(out, l.d)
		}
	}
	return out
}
