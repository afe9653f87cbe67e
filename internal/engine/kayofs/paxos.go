package kayofs

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// The metadata lease of DiskLeases: a Disk Paxos lease in the style of
// sanlock's paxos_lease.c. A ballot for lease version lver: write our
// block with a ballot number (mbal) higher than any we saw, read every
// host's block; abort if one has a higher mbal (or a later lver); adopt the
// value of the highest accepted ballot, or propose ourselves; write it as
// accepted (bal = mbal); read again and abort on a higher mbal; else the
// value is chosen: write the leader record. Ballot numbers are host id + 1
// modulo MaxSlots, so no two hosts share one. Only atomic sector reads and
// writes are needed.

var errBallotAbort = errors.New("kayofs: paxos ballot aborted by a higher ballot")

// Lock takes the metadata lease (every key maps onto it), once per mount:
// further holds only count.
func (m *DiskLeases) Lock(k LockKey, excl bool) error {
	_, err := m.take(true)
	return err
}

func (m *DiskLeases) TryLock(k LockKey) (bool, error) { return m.take(false) }

func (m *DiskLeases) take(wait bool) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for {
		if err := m.Fenced(); err != nil {
			return false, err
		}
		if m.held {
			m.refs++
			return true, nil
		}
		if m.acquiring {
			if !wait {
				return false, nil
			}
			m.cond.Wait()
			continue
		}
		m.acquiring = true
		m.mu.Unlock()
		got, err := m.acquireMeta(wait)
		m.mu.Lock()
		m.acquiring = false
		m.cond.Broadcast()
		if err != nil || !got {
			return false, err
		}
		m.held = true
		m.heldSince = time.Now()
		if err := m.loadOwners(); err != nil {
			m.release()
			return false, err
		}
	}
}

// Unlock drops a hold; the last one keeps the lease cached unless another
// host asked for it.
func (m *DiskLeases) Unlock(k LockKey, excl bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refs--
	if m.refs == 0 && m.held && time.Since(m.heldSince) >= m.o.MinHold && m.requested() {
		m.release()
		m.yielded.Store(m.now())
	}
}

// acquireMeta wins the metadata lease or, without wait, gives up when a
// live host holds it.
func (m *DiskLeases) acquireMeta(wait bool) (bool, error) {
	backoff := 50 * time.Microsecond
	var asked leaderRec
	var askedAt time.Time
	for {
		if err := m.Fenced(); err != nil {
			return false, err
		}
		b, err := m.readRecs(recLeader, 2)
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
				m.lver = ld.Lver
				m.lastReq = append(m.lastReq[:0], b[recSize:recSize+recCRCBytes]...)
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
					if err := m.writeRequest(); err != nil {
						return false, err
					}
					asked, askedAt = ld, time.Now()
				}
				time.Sleep(backoff)
				backoff = min(2*backoff, time.Millisecond)
				continue
			}
		}
		if ld.Free && ld.Owner == m.host+1 && ld.Gen == m.gen && time.Duration(m.now()-m.yielded.Load()) < m.o.MinHold {
			// we just let it go to a host that asked: leave it the ballot
			if ld != asked {
				if err := m.writeRequest(); err != nil {
					return false, err
				}
				asked = ld
			}
			time.Sleep(50 * time.Microsecond)
			continue
		}
		winner, err := m.ballot(ld.Lver + 1)
		if errors.Is(err, errBallotAbort) {
			time.Sleep(time.Duration(rand.Int64N(int64(backoff) * 4)))
			continue
		}
		if err != nil {
			return false, err
		}
		if winner.Host-1 == m.host && winner.Gen == m.gen {
			m.lver = ld.Lver + 1
			rq, err := m.readRecs(recRequest, 1)
			if err != nil {
				return false, err
			}
			m.lastReq = append(m.lastReq[:0], rq[:recCRCBytes]...)
			return true, nil
		}
	}
}

// ballot runs one Disk Paxos ballot for lver and commits its value.
func (m *DiskLeases) ballot(lver uint64) (slotOwner, error) {
	mbal := m.mbal/MaxSlots*MaxSlots + MaxSlots + uint64(m.host) + 1
	m.mbal = mbal
	d := dblock{Mbal: mbal, Lver: lver}
	w := alignedBuf(recSize)
	encDblock(w, m.uuid, d)
	if err := m.writeRec(recDblock(m.host), w); err != nil {
		return slotOwner{}, err
	}
	best, err := m.readBallot(d)
	if err != nil {
		return slotOwner{}, err
	}
	if best.Inp != 0 {
		d.Inp, d.Inp2 = best.Inp, best.Inp2
	} else {
		d.Inp, d.Inp2 = m.host+1, m.gen
	}
	d.Bal = mbal
	encDblock(w, m.uuid, d)
	if err := m.writeRec(recDblock(m.host), w); err != nil {
		return slotOwner{}, err
	}
	if _, err := m.readBallot(d); err != nil {
		return slotOwner{}, err
	}
	// A proposer that started from an older leader may finish a ballot
	// whose lease version was already committed (and maybe released):
	// it must not write that version's leader again.
	rb, err := m.readRecs(recLeader, 1)
	if err != nil {
		return slotOwner{}, err
	}
	if cur, err := decLeader(rb, m.uuid); err != nil || cur.Lver >= lver {
		return slotOwner{}, err
	}
	encLeader(w, m.uuid, leaderRec{Lver: lver, Owner: d.Inp, Gen: d.Inp2})
	if err := m.writeRec(recLeader, w); err != nil {
		return slotOwner{}, err
	}
	return slotOwner{Host: d.Inp, Gen: d.Inp2}, nil
}

// readBallot reads every host's block: errBallotAbort when one has joined
// a higher ballot or a later lease version; else the accepted value with
// the highest ballot, if any.
func (m *DiskLeases) readBallot(our dblock) (dblock, error) {
	b, err := m.readRecs(recDblock0, MaxSlots)
	if err != nil {
		return dblock{}, err
	}
	var best dblock
	for q := 0; q < MaxSlots; q++ {
		bk, err := decDblock(b[q*recSize:], m.uuid)
		if err != nil || bk.Mbal == 0 || bk.Lver < our.Lver {
			continue // a torn block is a host that never finished a write
		}
		if bk.Lver > our.Lver {
			return dblock{}, fmt.Errorf("%w: host %d at lease version %d", errBallotAbort, q, bk.Lver)
		}
		if bk.Mbal > our.Mbal {
			if bk.Mbal > m.mbal {
				m.mbal = bk.Mbal
			}
			return dblock{}, fmt.Errorf("%w: host %d ballot %d", errBallotAbort, q, bk.Mbal)
		}
		if bk.Inp != 0 && bk.Bal != 0 && bk.Bal > best.Bal {
			best = bk
		}
	}
	return best, nil
}

// release frees the metadata lease (caller holds m.mu).
func (m *DiskLeases) release() {
	m.held = false
	if m.Fenced() != nil {
		return
	}
	w := alignedBuf(recSize)
	encLeader(w, m.uuid, leaderRec{Lver: m.lver, Owner: m.host + 1, Gen: m.gen, Free: true})
	if err := m.writeRec(recLeader, w); err != nil {
		m.o.Logf("kayofs: node %s: releasing the metadata lease: %v", m.node, err)
	}
}

// requested reports whether another host asked for the lease since the
// last look (caller holds m.mu).
func (m *DiskLeases) requested() bool {
	b, err := m.readRecs(recRequest, 1)
	if err != nil {
		return false
	}
	if string(b[:recCRCBytes]) == string(m.lastReq) {
		return false
	}
	m.lastReq = append(m.lastReq[:0], b[:recCRCBytes]...)
	return true
}

func (m *DiskLeases) writeRequest() error {
	w := alignedBuf(recSize)
	le.PutUint64(w[24:], uint64(time.Now().UnixNano()))
	le.PutUint64(w[32:], uint64(m.host+1))
	sealRec(w, rtRequest, m.uuid, recCRCBytes)
	return m.writeRec(recRequest, w)
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
