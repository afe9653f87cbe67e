package kayofs

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
)

// The OFD manager: Linux open-file-description byte-range locks on the
// device node, taken on a private descriptor per mount, at byte offsets far
// past the end of any device (the lock space is virtual). OFD locks conflict
// between descriptors even inside one process, so goroutine "nodes" exclude
// each other like process nodes do, and the kernel drops them when a node
// dies: a dead node's liveness lock becomes free, which is how survivors know
// its journal may need replay. They coordinate one kernel only: across
// machines use the on-disk leases (lease.go) or etcd.
//
// Per slot: a liveness lock (held for the whole mount), an owner lock
// (taken after the liveness lock, dropped before it, so its holder is the
// live owner: OwnerLive probes it once; mounts without it, as older
// binaries, get the recovery-lock protocol) and a recovery lock, taken
// after every other lock. owner(slot) is only try-locked by its own mount
// and probed by others (F_OFD_GETLK), never waited for: it is outside the
// order.
const (
	fOFDGetlk  = 36
	fOFDSetlk  = 37
	fOFDSetlkw = 38

	lockBase       int64 = 1 << 61
	keySlotTable         = lockBase + 0
	keyNS                = lockBase + 1
	keyLiveBase          = lockBase + 0x100
	keyRecoverBase       = lockBase + 0x200
	keyOwnerBase         = lockBase + 0x300
	keyDomainBase        = lockBase + 0x400 // file and inode domains (LockDomain)
	keyAGBase            = lockBase + 0x1000_0000
	keyInodeBase         = lockBase + 0x2000_0000
	keyFileBase          = lockBase + 0x3000_0000
)

func keyLive(s int) int64       { return keyLiveBase + int64(s) }
func keyRecover(s int) int64    { return keyRecoverBase + int64(s) }
func keyOwner(s int) int64      { return keyOwnerBase + int64(s) }
func keyAG(k uint32) int64      { return keyAGBase + int64(k) }
func keyInode(ino uint32) int64 { return keyInodeBase + int64(ino) }
func keyFile(ino uint32) int64  { return keyFileBase + int64(ino) }

// lockCalls counts fcntl lock calls (the VM benchmark reports them).
var lockCalls atomic.Int64

// OFDLocks is the OFD LockManager.
type OFDLocks struct {
	f     *os.File
	owner atomic.Bool // holds its slot's owner lock
}

var _ LockManager = (*OFDLocks)(nil)

// NewOFDLocks opens a private descriptor on the device's path for locks.
func NewOFDLocks(dev Device, _ string) (LockManager, error) {
	pd, err := pathDevice(dev)
	if err != nil {
		return nil, err
	}
	return newOFD(pd.Path())
}

func newOFD(path string) (*OFDLocks, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return &OFDLocks{f: f}, nil
}

func pathDevice(dev Device) (PathDevice, error) {
	pd, ok := dev.(PathDevice)
	if !ok {
		return nil, fmt.Errorf("%w: device %T has no path for cluster locks", ErrInvalid, dev)
	}
	return pd, nil
}

func (m *OFDLocks) Close() error { return m.f.Close() }

func (m *OFDLocks) fcntl(cmd int, typ int16, off int64) error {
	lockCalls.Add(1)
	_, err := ofdFcntl(m.f.Fd(), cmd, typ, off)
	return err
}

var errWouldBlock = errors.New("would block")

func (m *OFDLocks) ofd(k int64, excl, wait bool) error {
	typ := lkRead
	if excl {
		typ = lkWrite
	}
	cmd := fOFDSetlk
	if wait {
		cmd = fOFDSetlkw
	}
	err := m.fcntl(cmd, typ, k)
	if isContended(err) {
		return errWouldBlock
	}
	return err
}

func (m *OFDLocks) Lock(k LockKey, excl bool) error { return m.ofd(k, excl, true) }

func (m *OFDLocks) TryLock(k LockKey) (bool, error) {
	err := m.ofd(k, true, false)
	if err == errWouldBlock {
		return false, nil
	}
	return err == nil, err
}

func (m *OFDLocks) Unlock(k LockKey, _ bool) { _ = m.fcntl(fOFDSetlk, lkUnlock, k) }

// tryLockRun takes the n keys from k exclusively in one call when no other
// descriptor holds any of them (the kernel grants a range whole or not at
// all); false: one is held elsewhere, nothing taken.
func (m *OFDLocks) tryLockRun(k int64, n int) (bool, error) {
	lockCalls.Add(1)
	_, err := ofdFcntlN(m.f.Fd(), fOFDSetlk, lkWrite, k, int64(n))
	if isContended(err) {
		return false, nil
	}
	return err == nil, err
}

// unlockRun lets the n keys from k go in one call.
func (m *OFDLocks) unlockRun(k int64, n int) {
	lockCalls.Add(1)
	_, _ = ofdFcntlN(m.f.Fd(), fOFDSetlk, lkUnlock, k, int64(n))
}

// heldElsewhere reports whether another descriptor holds k (F_OFD_GETLK:
// a probe that takes nothing).
func (m *OFDLocks) heldElsewhere(k int64) (bool, error) {
	lockCalls.Add(1)
	typ, err := ofdFcntl(m.f.Fd(), fOFDGetlk, lkWrite, k)
	return err == nil && typ != lkUnlock, err
}

func (m *OFDLocks) ClaimSlot(s int) (bool, error) {
	if err := m.Lock(keyRecover(s), true); err != nil {
		return false, err
	}
	got, err := m.TryLock(keyLive(s))
	m.Unlock(keyRecover(s), true)
	if err != nil || !got {
		return false, err
	}
	// The owner lock: whoever holds it is the slot's live owner, never a
	// recoverer, so other nodes' dead-node checks pass over this slot with
	// one probe. Without it (a failure here) they take the recovery lock.
	got, _ = m.TryLock(keyOwner(s))
	m.owner.Store(got)
	return true, nil
}

func (m *OFDLocks) ReleaseSlot(s int) {
	if m.owner.Swap(false) {
		m.Unlock(keyOwner(s), true) // before the liveness lock goes
	}
	m.Unlock(keyLive(s), true)
}

// OwnerLive probes s's owner lock. Only a mount that holds the slot's
// liveness lock holds it, so its holder is alive now, not a node that died
// holding it (a recoverer holds the liveness lock, not this).
func (m *OFDLocks) OwnerLive(s int) bool {
	live, err := m.heldElsewhere(keyOwner(s))
	return err == nil && live
}

func (m *OFDLocks) BeginRecovery(s int) (bool, error) {
	if err := m.Lock(keyRecover(s), true); err != nil {
		return false, err
	}
	got, err := m.TryLock(keyLive(s))
	if err != nil || !got {
		m.Unlock(keyRecover(s), true)
		return false, err
	}
	return true, nil
}

func (m *OFDLocks) EndRecovery(s int) {
	m.Unlock(keyLive(s), true)
	m.Unlock(keyRecover(s), true)
}

// Fenced: the kernel drops a dead process's OFD locks and a live one keeps
// them, so an OFD mount never loses its locks while it runs.
func (m *OFDLocks) Fenced() error { return nil }
