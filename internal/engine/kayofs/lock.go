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
	l := m.key(k)
	if excl {
		l.rw.Lock()
		if err := m.cl.Lock(k, true); err != nil {
			l.rw.Unlock()
			return err
		}
		if err := m.after(k); err != nil {
			m.cl.Unlock(k, true)
			l.rw.Unlock()
			return err
		}
		return nil
	}
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

// lockAllExcl takes keys exclusively, blocking, in the order given, and
// runs onAcquire once, after the last: the check it runs (dead nodes'
// journals replayed) then covers every node that let any of them go by
// dying, before the caller reads what they protect. A namespace holder's
// 64 directory domains pay for one check instead of 64 (dirdom.go). On
// an error none is held.
func (m *lockMgr) lockAllExcl(keys []int64) error {
	for i, k := range keys {
		l := m.key(k)
		l.rw.Lock()
		if err := m.cl.Lock(k, true); err != nil {
			l.rw.Unlock()
			m.unlockAll(keys[:i])
			return err
		}
	}
	if len(keys) > 0 {
		if err := m.after(keys[len(keys)-1]); err != nil {
			m.unlockAll(keys)
			return err
		}
	}
	return nil
}

// unlockAll lets exclusive holds of keys go, newest first.
func (m *lockMgr) unlockAll(keys []int64) {
	for i := len(keys) - 1; i >= 0; i-- {
		m.unlock(keys[i], true)
	}
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
