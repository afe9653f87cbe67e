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

// LockDomain maps k onto the cluster lock that guards it when a manager
// groups keys (format version 3, Superblock.LockDomains): the slot table
// and the namespace share one lock; each allocation group keeps its own;
// the file and inode keys of a run of inoChunk inode numbers share one per
// run, modulo MaxSlots. A mount prefers inode numbers in the runs of its
// own slot (nsCache.freeIno), so two nodes writing their own files hold
// disjoint locks and meet only on the namespace lock, where OCFS2's and
// GFS2's nodes meet too. Lock order still holds: namespace → file and
// inode domains (more than one only under the namespace lock held
// exclusively, which one mount of the cluster has at a time) → groups
// ascending. On a version-5 volume keyDir(x), the directory domain of
// run class x (dirdom.go), is the same lock as its runs' file and inode
// keys; its place in the order is between the namespace and file keys.
// The mapping depends on nothing that changes online (slot
// count, group count), so every mount maps a key alike.
func LockDomain(k LockKey) LockKey {
	switch {
	case k == keySlotTable || k == keyNS:
		return keyNS
	case k >= keyInodeBase && k < keyFileBase+1<<28:
		ino := uint64(k-keyInodeBase) & (1<<28 - 1)
		return keyDomainBase + int64(ino/inoChunk%MaxSlots)
	}
	return k
}

// inoChunk: inode numbers per run of one lock domain; a directory-entry
// block's worth at 4 KiB.
const inoChunk = 16

// ErrFenced: the mount lost its lease (it could not renew it within the
// lease timeout) and stopped writing, so that another node may recover it.
var ErrFenced = errors.New("kayofs: lease lost; this node fenced itself and no longer writes to the volume")

// LockManagerFactory makes the LockManager of one mount (or of one
// Recover/Slots call) of dev.
type LockManagerFactory func(dev Device, node string) (LockManager, error)
