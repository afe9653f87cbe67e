package kayofs

import "sync"

// The in-process half of Kayo FS locking: per key, a RWMutex excludes the
// goroutines of one mount, shared holds are counted so the cluster-wide
// LockManager (lockmgr.go) sees one hold per key, and onAcquire runs after
// a metadata lock is newly taken (recovery of dead nodes, deadcheck.go).

type lkey struct {
	rw     sync.RWMutex // in-process exclusion between goroutines of one mount
	mu     sync.Mutex
	shared int
}

type lockMgr struct {
	cl        LockManager
	mu        sync.Mutex
	keys      map[int64]*lkey
	onAcquire func(key int64) error // run after a metadata lock is newly taken
	onEvent   func(LeaseEvent)      // MountOptions.OnEvent
	recovered map[[2]uint64]bool    // (slot, mount generation) reported recovered (events.go)
}

func newLockMgr(cl LockManager) *lockMgr { return &lockMgr{cl: cl, keys: map[int64]*lkey{}} }

func (m *lockMgr) close() { _ = m.cl.Close() }

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

func (m *lockMgr) after(k int64) error {
	if m.onAcquire != nil {
		return m.onAcquire(k)
	}
	return nil
}

// lock takes k shared or exclusive, blocking.
func (m *lockMgr) lock(k int64, excl bool) error {
	if excl {
		return m.lockExcl(k, true)
	}
	l := m.key(k)
	l.rw.RLock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.shared == 0 {
		if err := m.cl.Lock(k, false); err != nil {
			l.rw.RUnlock()
			return err
		}
		if err := m.after(k); err != nil {
			m.cl.Unlock(k, false)
			l.rw.RUnlock()
			return err
		}
	}
	l.shared++
	return nil
}

// runLocker is a LockManager that takes a run of consecutive keys in one
// call (OFDLocks: one byte range).
type runLocker interface {
	tryLockRun(k int64, n int) (bool, error)
	unlockRun(k int64, n int)
}

// lockRunExcl takes the n consecutive keys from k exclusively, blocking,
// and runs onAcquire once, after the last: the check it runs (dead nodes'
// journals replayed) then covers every node that let any of them go by
// dying, before the caller reads what they protect, so a namespace
// holder's 64 directory domains pay for one check instead of 64
// (dirdom.go). A runLocker takes them in one call when none is held
// elsewhere; else (or without one) they are taken one by one, ascending,
// as single locks are. On an error none is held.
func (m *lockMgr) lockRunExcl(k int64, n int) error {
	for i := 0; i < n; i++ {
		m.key(k + int64(i)).rw.Lock()
	}
	got := false
	if rl, ok := m.cl.(runLocker); ok && n > 1 {
		var err error
		if got, err = rl.tryLockRun(k, n); err != nil {
			m.rwUnlockRun(k, n)
			return err
		}
	}
	for i := 0; !got && i < n; i++ {
		if err := m.cl.Lock(k+int64(i), true); err != nil {
			for j := i - 1; j >= 0; j-- {
				m.cl.Unlock(k+int64(j), true)
			}
			m.rwUnlockRun(k, n)
			return err
		}
	}
	if err := m.after(k + int64(n) - 1); err != nil {
		m.unlockRun(k, n)
		return err
	}
	return nil
}

// unlockRun lets lockRunExcl's n keys from k go.
func (m *lockMgr) unlockRun(k int64, n int) {
	if rl, ok := m.cl.(runLocker); ok && n > 1 {
		rl.unlockRun(k, n)
	} else {
		for i := n - 1; i >= 0; i-- {
			m.cl.Unlock(k+int64(i), true)
		}
	}
	m.rwUnlockRun(k, n)
}

func (m *lockMgr) rwUnlockRun(k int64, n int) {
	for i := n - 1; i >= 0; i-- {
		m.key(k + int64(i)).rw.Unlock()
	}
}

// lockExcl takes k exclusively, blocking; check: run onAcquire (else the
// caller runs it before it reads what k protects: lockNSAll).
func (m *lockMgr) lockExcl(k int64, check bool) error {
	l := m.key(k)
	l.rw.Lock()
	if err := m.cl.Lock(k, true); err != nil {
		l.rw.Unlock()
		return err
	}
	if !check {
		return nil
	}
	if err := m.after(k); err != nil {
		m.cl.Unlock(k, true)
		l.rw.Unlock()
		return err
	}
	return nil
}

// tryLock takes k exclusively without blocking.
func (m *lockMgr) tryLock(k int64) (bool, error) {
	l := m.key(k)
	if !l.rw.TryLock() {
		return false, nil
	}
	got, err := m.cl.TryLock(k)
	if err != nil || !got {
		l.rw.Unlock()
		return false, err
	}
	if err := m.after(k); err != nil {
		m.cl.Unlock(k, true)
		l.rw.Unlock()
		return false, err
	}
	return true, nil
}

func (m *lockMgr) unlock(k int64, excl bool) {
	l := m.key(k)
	if excl {
		m.cl.Unlock(k, true)
		l.rw.Unlock()
		return
	}
	l.mu.Lock()
	l.shared--
	if l.shared == 0 {
		m.cl.Unlock(k, false)
	}
	l.mu.Unlock()
	l.rw.RUnlock()
}
