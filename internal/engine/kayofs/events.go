package kayofs

import "time"

// Lease events: what a mount's lock manager and recovery decide about
// nodes that stop renewing their leases, for the cluster's history (the
// engine records them as events; internal/engine/volume_locks.go). They
// are reported to MountOptions.OnEvent, DiskLeaseOptions.OnEvent or the
// etcd manager's Options.OnEvent, from inside the manager: a handler must
// return at once (record asynchronously) and must not call the mount.
const (
	// LeaseFenced: Node could not renew its lease within the timeout and
	// stopped writing to the volume (ErrFenced).
	LeaseFenced = "fenced"
	// LeaseRecoveryWait: Node saw Peer's lease stop changing and waits
	// until it has been silent for Lease+Margin before it may take Peer's
	// leases and recover its slot. Wait is what is left of that.
	LeaseRecoveryWait = "recovery_wait"
	// LeaseRecovered: Node recovered the slot of Peer, a dead mount: it
	// replayed its journal (Replayed: a committed transaction was still
	// to be written in place) and no longer counts it as live.
	LeaseRecovered = "recovered"
)

// LeaseEvent is one decision about leases and recovery.
type LeaseEvent struct {
	Kind string
	// Node is the node that decided (fenced, waits, recovered); Peer the
	// other node (waits for, recovered), "" for LeaseFenced.
	Node, Peer string
	// Slot is the node slot concerned, -1 when not known (a host lease).
	Slot int
	// Lease and Margin: the lease timeout and the safety margin added to
	// it before a silent node is taken for dead; Wait, for
	// LeaseRecoveryWait, how much of Lease+Margin is still to wait.
	Lease, Margin, Wait time.Duration
	// MountGen: for LeaseRecovered, the dead mount's generation of its slot.
	MountGen uint64
	Replayed bool
	Why      string
}

// emit reports ev to f, if any.
func emit(f func(LeaseEvent), ev LeaseEvent) {
	if f != nil {
		f(ev)
	}
}

// recoveredSlot reports that this mount recovered slot s (its slot entry
// e as read before) when it replayed a committed transaction or the slot
// was still mounted: a dead mount, not a free or detached slot. Every
// process that finds the dead mount before its node mounts again reports
// it (MountGen tells them apart from a later death of the same slot).
func (m *lockMgr) recoveredSlot(node string, s int, e SlotEntry, replayed bool) {
	if m.onEvent == nil || (!replayed && e.State != SlotMounted) {
		return
	}
	m.mu.Lock()
	seen := m.recovered[[2]uint64{uint64(s), e.MountGen}]
	if m.recovered == nil {
		m.recovered = map[[2]uint64]bool{}
	}
	m.recovered[[2]uint64{uint64(s), e.MountGen}] = true
	m.mu.Unlock()
	if seen && !replayed {
		return // this mount reported that dead mount already
	}
	emit(m.onEvent, LeaseEvent{Kind: LeaseRecovered, Node: node, Peer: e.Node, Slot: s, MountGen: e.MountGen, Replayed: replayed})
}
