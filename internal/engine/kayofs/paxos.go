package kayofs

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// The leases of DiskLeases (the one metadata lease, or one per lease
// domain on a version-4 volume: leasedom.go): each a Disk Paxos lease in the style of
// sanlock's paxos_lease.c. A ballot for lease version lver: write our
// block with a ballot number (mbal) higher than any we saw, read every
// host's block; abort if one has a higher mbal (or a later lver); adopt the
// value of the highest accepted ballot, or propose ourselves; write it as
// accepted (bal = mbal); read again and abort on a higher mbal; else the
// value is chosen: write the leader record. Ballot numbers are host id + 1
// modulo MaxSlots, so no two hosts share one. Only atomic sector reads and
// writes are needed.

var errBallotAbort = errors.New("kayofs: paxos ballot aborted by a higher ballot")

// Lock takes k's lease (its domain's on a version-4 volume, else the one
// metadata lease), once per mount: further holds of keys mapped onto it
// only count.
func (m *DiskLeases) Lock(k LockKey, excl bool) error {
	_, err := m.take(m.domainOf(k), true)
	return err
}

func (m *DiskLeases) TryLock(k LockKey) (bool, error) { return m.take(m.domainOf(k), false) }

func (m *DiskLeases) take(l *dlease, wait bool) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for {
		if err := m.Fenced(); err != nil {
			return false, err
		}
		if l.held {
			l.refs++
			return true, nil
		}
		if l.acquiring {
			if !wait {
				return false, nil
			}
			m.cond.Wait()
			continue
		}
		l.acquiring = true
		m.mu.Unlock()
		got, err := m.acquire(l, wait)
		m.mu.Lock()
		l.acquiring = false
		m.cond.Broadcast()
		if err != nil || !got {
			return false, err
		}
		l.held = true
		l.heldSince = time.Now()
		if l.d == ldNS {
			if err := m.loadOwners(); err != nil {
				m.release(l)
				return false, err
			}
		}
	}
}

// Unlock drops a hold; the last one keeps the lease cached unless another
// host asked for it.
func (m *DiskLeases) Unlock(k LockKey, excl bool) {
	m.drop(m.domainOf(k))
}

// maybeYield releases l, at its holder's unlock, when it is idle, held
// MinHold and asked for (caller holds m.mu). It reads the request record
// at most every MinHold/32 per domain: a lone busy node would otherwise
// pay a read at every unlock of every domain, and a waiter waits for the
// next look.
func (m *DiskLeases) maybeYield(l *dlease) {
	if l.refs != 0 || !l.held || time.Since(l.heldSince) < m.o.MinHold || time.Since(l.checked) < m.o.MinHold/32 {
		return
	}
	l.checked = time.Now()
	if m.requested(l) {
		m.yield(l)
	}
}

func (m *DiskLeases) yield(l *dlease) {
	m.release(l)
	l.yielded.Store(m.now())
}

// yieldIdle is the renewal loop's look at the leases nobody in this mount
// uses (caller holds m.mu): one read of the request records of them all,
// and each asked for goes if it was held MinHold or unused for MinHold/4
// (a node done with its work hands over at once, not after its whole
// minimum hold; a node between two operations is not done).
func (m *DiskLeases) yieldIdle() {
	lo, hi := -1, -1
	for _, l := range m.doms {
		if l.held && l.refs == 0 {
			if lo < 0 {
				lo = l.d
			}
			hi = l.d
		}
	}
	if lo < 0 {
		return
	}
	first := m.recRequestOf(lo)
	b, err := m.readRecs(first, m.recRequestOf(hi)-first+1)
	if err != nil {
		return
	}
	for _, l := range m.doms[lo : hi+1] {
		if !l.held || l.refs != 0 || time.Since(l.heldSince) < m.o.MinHold && time.Since(l.lastUse) < m.o.MinHold/4 {
			continue
		}
		rq := b[(m.recRequestOf(l.d)-first)*recSize:][:recCRCBytes]
		if string(rq) == string(l.lastReq) {
			continue
		}
		l.lastReq = append(l.lastReq[:0], rq...)
		m.yield(l)
	}
}

// acquire wins l's lease or, without wait, gives up when a live host
// holds it.
func (m *DiskLeases) acquire(l *dlease, wait bool) (bool, error) {
	backoff := 50 * time.Microsecond
	var asked leaderRec
	var askedAt time.Time
	for {
		if err := m.Fenced(); err != nil {
			return false, err
		}
		b, err := m.readRecs(m.recLeaderOf(l.d), 1)
		if err != nil {
			return false, err
		}
		ld, err := decLeader(b, m.uuid)
		if err != nil {
			return false, err
		}
		if ld.Owner != 0 && !ld.Free {
			h := ld.Owner - 1
			if h == m.host && ld.Gen == m.gen {
				l.lver = ld.Lver
				rq, err := m.readRecs(m.recRequestOf(l.d), 1)
				if err != nil {
					return false, err
				}
				l.lastReq = append(l.lastReq[:0], rq[:recCRCBytes]...)
				return true, nil
			}
			dead, err := m.hostDead(h, ld.Gen)
			if err != nil {
				return false, err
			}
			if !dead {
				if !wait {
					return false, nil
				}
				if ld != asked || time.Since(askedAt) > m.o.Renew {
					if err := m.writeRequest(l); err != nil {
						return false, err
					}
					asked, askedAt = ld, time.Now()
				}
				time.Sleep(backoff)
				backoff = min(2*backoff, time.Millisecond)
				continue
			}
		}
		if ld.Free && ld.Owner == m.host+1 && ld.Gen == m.gen && time.Duration(m.now()-l.yielded.Load()) < m.o.MinHold {
			// we just let it go to a host that asked: leave it the ballot
			if ld != asked {
				if err := m.writeRequest(l); err != nil {
					return false, err
				}
				asked = ld
			}
			time.Sleep(50 * time.Microsecond)
			continue
		}
		winner, err := m.ballot(l, ld.Lver+1)
		if errors.Is(err, errBallotAbort) {
			time.Sleep(time.Duration(rand.Int64N(int64(backoff) * 4)))
			continue
		}
		if err != nil {
			return false, err
		}
		if winner.Host-1 == m.host && winner.Gen == m.gen {
			l.lver = ld.Lver + 1
			rq, err := m.readRecs(m.recRequestOf(l.d), 1)
			if err != nil {
				return false, err
			}
			l.lastReq = append(l.lastReq[:0], rq[:recCRCBytes]...)
			return true, nil
		}
	}
}

// ballot runs one Disk Paxos ballot for l's lease version lver and commits
// its value.
func (m *DiskLeases) ballot(l *dlease, lver uint64) (slotOwner, error) {
	m.mu.Lock()
	l.touched = true
	mbal := l.mbal/MaxSlots*MaxSlots + MaxSlots + uint64(m.host) + 1
	l.mbal = mbal
	m.mu.Unlock()
	d := dblock{Mbal: mbal, Lver: lver}
	if err := m.writeDblock(l.d, d); err != nil {
		return slotOwner{}, err
	}
	best, err := m.readBallot(l, d)
	if err != nil {
		return slotOwner{}, err
	}
	if best.Inp != 0 {
		d.Inp, d.Inp2 = best.Inp, best.Inp2
	} else {
		d.Inp, d.Inp2 = m.host+1, m.gen
	}
	d.Bal = mbal
	if err := m.writeDblock(l.d, d); err != nil {
		return slotOwner{}, err
	}
	if _, err := m.readBallot(l, d); err != nil {
		return slotOwner{}, err
	}
	// A proposer that started from an older leader may finish a ballot
	// whose lease version was already committed (and maybe released):
	// it must not write that version's leader again.
	rb, err := m.readRecs(m.recLeaderOf(l.d), 1)
	if err != nil {
		return slotOwner{}, err
	}
	if cur, err := decLeader(rb, m.uuid); err != nil || cur.Lver >= lver {
		return slotOwner{}, err
	}
	w := alignedBuf(recSize)
	encLeader(w, m.uuid, leaderRec{Lver: lver, Owner: d.Inp, Gen: d.Inp2})
	if err := m.writeRec(m.recLeaderOf(l.d), w); err != nil {
		return slotOwner{}, err
	}
	return slotOwner{Host: d.Inp, Gen: d.Inp2}, nil
}

// readBallot reads every host's block of l's domain: errBallotAbort when
// one has joined a higher ballot or a later lease version; else the
// accepted value with the highest ballot, if any.
func (m *DiskLeases) readBallot(l *dlease, our dblock) (dblock, error) {
	bks, err := m.readDblocks(l.d)
	if err != nil {
		return dblock{}, err
	}
	var best dblock
	for q, bk := range bks {
		if bk.Mbal == 0 || bk.Lver < our.Lver {
			continue // a torn block is a host that never finished a write
		}
		if bk.Lver > our.Lver {
			return dblock{}, fmt.Errorf("%w: host %d at lease version %d", errBallotAbort, q, bk.Lver)
		}
		if bk.Mbal > our.Mbal {
			m.mu.Lock()
			if bk.Mbal > l.mbal {
				l.mbal = bk.Mbal
			}
			m.mu.Unlock()
			return dblock{}, fmt.Errorf("%w: host %d ballot %d", errBallotAbort, q, bk.Mbal)
		}
		if bk.Inp != 0 && bk.Bal != 0 && bk.Bal > best.Bal {
			best = bk
		}
	}
	return best, nil
}

// release frees l's lease (caller holds m.mu).
func (m *DiskLeases) release(l *dlease) {
	l.held = false
	if m.Fenced() != nil {
		return
	}
	w := alignedBuf(recSize)
	encLeader(w, m.uuid, leaderRec{Lver: l.lver, Owner: m.host + 1, Gen: m.gen, Free: true})
	if err := m.writeRec(m.recLeaderOf(l.d), w); err != nil {
		m.o.Logf("kayofs: node %s: releasing lease domain %d: %v", m.node, l.d, err)
	}
}

// requested reports whether another host asked for l's lease since the
// last look (caller holds m.mu).
func (m *DiskLeases) requested(l *dlease) bool {
	b, err := m.readRecs(m.recRequestOf(l.d), 1)
	if err != nil {
		return false
	}
	if string(b[:recCRCBytes]) == string(l.lastReq) {
		return false
	}
	l.lastReq = append(l.lastReq[:0], b[:recCRCBytes]...)
	return true
}

func (m *DiskLeases) writeRequest(l *dlease) error {
	w := alignedBuf(recSize)
	le.PutUint64(w[24:], uint64(time.Now().UnixNano()))
	le.PutUint64(w[32:], uint64(m.host+1))
	le.PutUint64(w[40:], uint64(l.d))
	sealRec(w, rtRequest, m.uuid, recCRCBytes)
	return m.writeRec(m.recRequestOf(l.d), w)
}

// loadOwners reads the newest valid copy of the slot owners table.
func (m *DiskLeases) loadOwners() error {
	b, err := m.readRecs(recOwners, 2)
	if err != nil {
		return err
	}
	var t0, t1 [MaxSlots]slotOwner
	s0, e0 := decOwners(b, m.uuid, &t0)
	s1, e1 := decOwners(b[recSize:], m.uuid, &t1)
	switch {
	case e0 != nil && e1 != nil:
		return e0
	case e1 != nil || (e0 == nil && s0 >= s1):
		m.owners, m.ownersSeq = t0, s0
	default:
		m.owners, m.ownersSeq = t1, s1
	}
	return nil
}

// writeOwners writes the table over the older copy (caller holds m.mu and
// the lease).
func (m *DiskLeases) writeOwners() error {
	if err := m.Fenced(); err != nil {
		return err
	}
	m.ownersSeq++
	w := alignedBuf(recSize)
	encOwners(w, m.uuid, m.ownersSeq, &m.owners)
	return m.writeRec(recOwners+int(m.ownersSeq%2), w)
}
