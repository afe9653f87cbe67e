package kayofs

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
)

// Cluster locks are Linux open-file-description (OFD) byte-range locks on the
// device node, taken on a private descriptor per mount, at byte offsets far
// past the end of any device (the lock space is virtual). OFD locks conflict
// between descriptors even inside one process, so goroutine "nodes" exclude
// each other like process nodes do, and the kernel drops them when a node
// dies: a dead node's liveness lock becomes free, which is how survivors know
// its journal may need replay.
//
// Lock order (deadlock freedom): slot table → namespace → file(ino) →
// inode(ino) → allocation groups (ascending, or try-lock) → recovery(slot).
// owner(slot) is only try-locked by its own mount and probed by others
// (F_OFD_GETLK), never waited for: it is outside the order.
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

type lkey struct {
	rw     sync.RWMutex // in-process exclusion between goroutines of one mount
	mu     sync.Mutex
	shared int
}

type lockMgr struct {
	f         *os.File
	mu        sync.Mutex
	keys      map[int64]*lkey
	onAcquire func(key int64) error // run after a metadata lock is newly taken
}

func newLockMgr(path string) (*lockMgr, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return &lockMgr{f: f, keys: map[int64]*lkey{}}, nil
}

func (m *lockMgr) close() { _ = m.f.Close() }

func (m *lockMgr) key(k int64) *lkey {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.keys[k]
	if l == nil {
		l = &lkey{}
		m.keys[k] = l
	}
	return l
}

// lockCalls counts fcntl lock calls (the VM benchmark reports them).
var lockCalls atomic.Int64

func (m *lockMgr) fcntl(cmd int, typ int16, off int64) error {
	lockCalls.Add(1)
	_, err := ofdFcntl(m.f.Fd(), cmd, typ, off)
	return err
}

var errWouldBlock = errors.New("would block")

func (m *lockMgr) ofd(k int64, excl, wait bool) error {
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

func (m *lockMgr) ofdUnlock(k int64) { _ = m.fcntl(fOFDSetlk, lkUnlock, k) }

func (m *lockMgr) after(k int64) error {
	if m.onAcquire != nil {
		return m.onAcquire(k)
	}
	return nil
}

// lock takes k shared or exclusive, blocking.
func (m *lockMgr) lock(k int64, excl bool) error {
	l := m.key(k)
	if excl {
		l.rw.Lock()
		if err := m.ofd(k, true, true); err != nil {
			l.rw.Unlock()
			return err
		}
		if err := m.after(k); err != nil {
			m.ofdUnlock(k)
			l.rw.Unlock()
			return err
		}
		return nil
	}
	l.rw.RLock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.shared == 0 {
		if err := m.ofd(k, false, true); err != nil {
			l.rw.RUnlock()
			return err
		}
		if err := m.after(k); err != nil {
			m.ofdUnlock(k)
			l.rw.RUnlock()
			return err
		}
	}
	l.shared++
	return nil
}

// tryLock takes k exclusively without blocking.
func (m *lockMgr) tryLock(k int64) (bool, error) {
	l := m.key(k)
	if !l.rw.TryLock() {
		return false, nil
	}
	if err := m.ofd(k, true, false); err != nil {
		l.rw.Unlock()
		if err == errWouldBlock {
			return false, nil
		}
		return false, err
	}
	if err := m.after(k); err != nil {
		m.ofdUnlock(k)
		l.rw.Unlock()
		return false, err
	}
	return true, nil
}

func (m *lockMgr) unlock(k int64, excl bool) {
	l := m.key(k)
	if excl {
		m.ofdUnlock(k)
		l.rw.Unlock()
		return
	}
	l.mu.Lock()
	l.shared--
	if l.shared == 0 {
		m.ofdUnlock(k)
	}
	l.mu.Unlock()
	l.rw.RUnlock()
}

// rawTry / rawUnlock bypass the in-process layer; used for the
// liveness and recovery bytes, which one mount only ever takes once.
func (m *lockMgr) rawTry(k int64) (bool, error) {
	err := m.ofd(k, true, false)
	if err == errWouldBlock {
		return false, nil
	}
	return err == nil, err
}
func (m *lockMgr) rawUnlock(k int64) { m.ofdUnlock(k) }

// heldElsewhere reports whether another descriptor holds k (F_OFD_GETLK:
// a probe that takes nothing).
func (m *lockMgr) heldElsewhere(k int64) (bool, error) {
	lockCalls.Add(1)
	typ, err := ofdFcntl(m.f.Fd(), fOFDGetlk, lkWrite, k)
	return err == nil && typ != lkUnlock, err
}
