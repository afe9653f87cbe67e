package kayofs

import "errors"

// LockKey names one cluster lock of a volume. The classes and their order
// (deadlock freedom): slot table → namespace → file(ino) → inode(ino) →
// allocation groups (ascending, or try-lock). A LockManager may map several
// keys onto one cluster-wide lock (the on-disk manager does), as long as a
// mount can take a key it maps onto a lock it already holds.
type LockKey = int64

// LockManager is the cluster-wide half of Kayo FS locking for one mount: it
// excludes other mounts (other processes, other kernels, other hosts) and
// tells which slots have a live owner. The mount's in-process layer
// (lock.go) excludes its own goroutines and calls Lock once per key it
// newly takes (shared locks are counted there), so implementations see at
// most one shared or exclusive hold of a key at a time from it.
//
// Implementations: the OFD manager (one kernel only: NewOFDLocks), the
// on-disk lease manager (any hosts sharing the LUN: NewDiskLeases), the
// etcd manager (hosts sharing an etcd cluster).
type LockManager interface {
	// Lock takes k cluster-wide, shared or exclusive, waiting until granted.
	Lock(k LockKey, excl bool) error
	// TryLock takes k exclusively if that needs no wait.
	TryLock(k LockKey) (bool, error)
	// Unlock releases a hold taken by Lock or TryLock.
	Unlock(k LockKey, excl bool)

	// ClaimSlot makes this mount the live owner of slot s (held until
	// ReleaseSlot or Close); false when another live mount owns it. Called
	// with the slot table lock held, after BeginRecovery found s ownerless.
	ClaimSlot(s int) (bool, error)
	// ReleaseSlot ends this mount's ownership of s (unmount, detach).
	ReleaseSlot(s int)
	// OwnerLive reports whether a live mount other than this one owns s.
	// It takes nothing; false may be wrong only towards "live".
	OwnerLive(s int) bool
	// BeginRecovery reports whether s has no live owner and, if so, keeps
	// any other mount from claiming or recovering it until EndRecovery:
	// the caller may then replay its journal. Called with the slot table,
	// namespace or a group lock held. False holds nothing.
	BeginRecovery(s int) (bool, error)
	EndRecovery(s int)

	// Fenced is nil while this mount may write to the volume, and an error
	// wrapping ErrFenced once it may not (its lease was not renewed in
	// time): from then on another node may recover its slot.
	Fenced() error
	// Close releases everything this manager holds.
	Close() error
}

// ErrFenced: the mount lost its lease (it could not renew it within the
// lease timeout) and stopped writing, so that another node may recover it.
var ErrFenced = errors.New("kayofs: lease lost; this node fenced itself and no longer writes to the volume")

// LockManagerFactory makes the LockManager of one mount (or of one
// Recover/Slots call) of dev.
type LockManagerFactory func(dev Device, node string) (LockManager, error)
