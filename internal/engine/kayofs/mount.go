package kayofs

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Volume is a Kayo FS volume mounted by one node in one slot.
type Volume struct {
	dev Device
	// sbp is the layout this mount works with. Grow and AddSlots (by any
	// node) only ever enlarge it; refreshSB reloads it from disk whenever a
	// metadata lock is newly taken, so a node never acts on blocks or slots
	// its view does not cover.
	sbp  atomic.Pointer[Superblock]
	lk   *lockMgr
	slot int
	node string

	jmu     sync.Mutex
	jseq    uint64
	jfailed error

	nsv     *nsView // the cached namespace; shared by this process's mounts of the volume (views.go)
	views   *Views  // where nsv came from (nil: private)
	viewKey viewKey
	fastGen atomic.Uint64 // inode generations of fast creates (dirdom.go)

	hbMu   sync.Mutex
	hb     Heartbeat
	hbStop chan struct{}
	hbDone chan struct{}

	labelMu sync.Mutex
	label   string

	watchMu sync.Mutex
	watch   []slotWatch // per slot: known ownerless and clean (recoverDead)
	need    []int       // recoverDead's scratch: slots whose block it reads
	table   []byte      // recoverDead's scratch: those slot blocks

	treeMu sync.Mutex
	trees  map[uint32]treeCacheEnt // decoded extent trees by inode
	closed atomic.Bool
}

// MountOptions tune a mount.
type MountOptions struct {
	HeartbeatPeriod time.Duration // default 1s
	// Locks makes the mount's cluster lock manager (lockmgr.go); default
	// NewOFDLocks, which coordinates one kernel only.
	Locks LockManagerFactory
	// OnEvent receives the slots this mount recovers from dead mounts
	// (LeaseRecovered; events.go).
	OnEvent func(LeaseEvent)
	// Views, when set, is where this process's mounts of one volume share
	// their cached namespace (views.go); nil: the mount keeps its own.
	Views *Views
}

func (v *Volume) live() error {
	if v.closed.Load() {
		return ErrUnmounted
	}
	return nil
}

// sbl is the current layout (never nil while mounted).
func (v *Volume) sbl() *Superblock { return v.sbp.Load() }

// refreshSB reloads the superblock when another node changed it (label,
// Grow, AddSlots). A layout only ever grows, so mixing an older and a newer
// view inside one operation is safe: the older one just covers less.
func (v *Volume) refreshSB() error {
	b := make([]byte, sbEncSize)
	if _, err := v.dev.ReadAt(b, 0); err != nil {
		return fmt.Errorf("kayofs: reading superblock: %w", err)
	}
	cur := v.sbl()
	nsb, err := decodeSuperblock(b)
	if err != nil {
		// a torn primary (a superblock write in progress, or a crash in
		// one): the backup is authoritative
		if nsb, err = ReadSuperblock(v.dev); err != nil {
			return err
		}
	}
	if nsb.Gen <= cur.Gen || nsb.UUID != cur.UUID {
		return nil
	}
	if nsb.TotalBlocks < cur.TotalBlocks || nsb.SlotCount < cur.SlotCount || nsb.BlockSize != cur.BlockSize {
		return fmt.Errorf("%w: superblock generation %d shrinks the layout", ErrCorrupt, nsb.Gen)
	}
	v.sbp.Store(nsb)
	v.labelMu.Lock()
	v.label = nsb.Label
	v.labelMu.Unlock()
	return nil
}

// Fenced is nil while this mount may write, and an error wrapping ErrFenced
// once its lock manager lost its lease: the node's agent should then stop
// its VMs (their disks' writes fail from then on) and mount again.
func (v *Volume) Fenced() error { return v.lk.cl.Fenced() }

// Slot is the node slot this mount holds (record it in the cluster DB).
func (v *Volume) Slot() int { return v.slot }

// Node is the node name this mount was made for.
func (v *Volume) Node() string { return v.node }

// UUID is the volume UUID.
func (v *Volume) UUID() string { return v.sbl().UUIDString() }

// Label is the volume label.
func (v *Volume) Label() string {
	v.labelMu.Lock()
	defer v.labelMu.Unlock()
	return v.label
}

// Superblock returns a copy of the superblock the volume was mounted with.
func (v *Volume) Superblock() Superblock {
	sb := *v.sbl()
	sb.Label = v.Label()
	return sb
}

// ReadSuperblock returns the primary superblock, or the backup when the
// primary is torn or missing.
func ReadSuperblock(dev Device) (*Superblock, error) {
	b := make([]byte, sbEncSize)
	if _, err := dev.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("kayofs: reading superblock: %w", err)
	}
	sb, perr := decodeSuperblock(b)
	if perr == nil {
		return sb, nil
	}
	for bs := int64(MinBlockSize); bs <= MaxBlockSize; bs *= 2 {
		if bs+sbEncSize > dev.Size() {
			break
		}
		if _, err := dev.ReadAt(b, bs); err != nil {
			continue
		}
		if sb, err := decodeSuperblock(b); err == nil && int64(sb.BlockSize) == bs {
			return sb, nil
		}
	}
	return nil, perr
}

// writeSuperblocks writes primary then backup, syncing after each, so one
// of them is always valid.
func writeSuperblocks(dev Device, sb *Superblock) error {
	b := sb.encode()
	if err := writeBlock(dev, sb.bs(), 0, b); err != nil {
		return err
	}
	if err := dev.Sync(); err != nil {
		return err
	}
	if err := writeBlock(dev, sb.bs(), 1, b); err != nil {
		return err
	}
	return dev.Sync()
}

// repairSuperblocks rewrites a backup that differs from the primary (or a
// torn primary from the backup). Caller holds the slot-table lock.
func repairSuperblocks(dev Device, sb *Superblock) error {
	bs := sb.bs()
	p, err := readBlock(dev, bs, 0)
	if err != nil {
		return err
	}
	q, err := readBlock(dev, bs, 1)
	if err != nil {
		return err
	}
	want := sb.encode()
	if bytes.Equal(p, want) && bytes.Equal(q, want) {
		return nil
	}
	return writeSuperblocks(dev, sb)
}

// Mount claims a free node slot for node (compare-and-swap on the on-disk
// slot table under the cluster slot-table lock), replays the journal of
// every slot whose owner died, and starts heartbeating.
func Mount(dev Device, node string, opts ...MountOptions) (*Volume, error) {
	if err := validNodeName(node); err != nil {
		return nil, err
	}
	o := firstOpts(opts)
	if o.HeartbeatPeriod <= 0 {
		o.HeartbeatPeriod = time.Second
	}
	lk, err := o.lockMgr(dev, node)
	if err != nil {
		return nil, err
	}
	pathDev := dev
	if _, ofd := lk.cl.(*OFDLocks); !ofd {
		dev = &fencedDevice{Device: dev, m: lk.cl}
	}
	v, err := mount(dev, lk, node)
	if err != nil {
		lk.close()
		return nil, err
	}
	if w, k, ok := o.Views.view(pathDev, v.sbl().UUID); ok {
		v.nsv, v.views, v.viewKey = w, o.Views, k
	}
	v.hbStop, v.hbDone = make(chan struct{}), make(chan struct{})
	go v.heartbeatLoop(o.HeartbeatPeriod, v.hbStop, v.hbDone)
	return v, nil
}

func mount(dev Device, lk *lockMgr, node string) (*Volume, error) {
	if err := lk.lock(keySlotTable, true); err != nil {
		return nil, err
	}
	defer lk.unlock(keySlotTable, true)
	sb, err := ReadSuperblock(dev)
	if err != nil {
		return nil, err
	}
	chosen, mine := -1, -1
	var entries []SlotEntry
	for s := 0; s < int(sb.SlotCount); s++ {
		got, err := lk.cl.BeginRecovery(s)
		if err != nil {
			return nil, err
		}
		e, eerr := readSlot(dev, sb, s)
		if got {
			var replayed bool
			replayed, err = recoverSlotJournal(dev, sb, s)
			lk.cl.EndRecovery(s)
			if err == nil && eerr == nil {
				lk.recoveredSlot(node, s, e, replayed)
			}
		}
		if err != nil {
			return nil, err
		}
		if eerr != nil {
			e = SlotEntry{}
		}
		entries = append(entries, e)
		if !got {
			if e.State == SlotMounted && e.Node == node {
				return nil, fmt.Errorf("%w: node %s already holds slot %d", ErrMounted, node, s)
			}
			continue
		}
		if e.State != SlotFree && e.Node == node && mine < 0 {
			mine = s
		}
		if e.State != SlotFree && e.Node != node {
			continue // another node's slot: a lasting mount, or a crashed one it will reclaim
		}
		if chosen < 0 {
			chosen = s
		}
	}
	if mine >= 0 {
		chosen = mine
	}
	if chosen < 0 {
		return nil, fmt.Errorf("%w: all %d slots are mounted", ErrNoSlot, sb.SlotCount)
	}
	got, err := lk.cl.ClaimSlot(chosen)
	if err != nil || !got {
		return nil, fmt.Errorf("%w: slot %d was taken concurrently (%v)", ErrNoSlot, chosen, err)
	}
	fail := func(err error) (*Volume, error) {
		lk.cl.ReleaseSlot(chosen)
		return nil, err
	}
	if err := repairSuperblocks(dev, sb); err != nil {
		return fail(err)
	}
	e := entries[chosen]
	e = SlotEntry{State: SlotMounted, Node: node, MountGen: e.MountGen + 1, MountedAt: time.Now(), Gen: e.Gen + 1}
	if err := writeSlot(dev, sb, chosen, e); err != nil {
		return fail(err)
	}
	hb := Heartbeat{Active: true, Node: node, MountGen: e.MountGen, Timestamp: time.Now()}
	if old, err := readHeartbeat(dev, sb, chosen); err == nil {
		hb.Counter = old.Counter + 1
	}
	if err := writeHeartbeat(dev, sb, chosen, hb); err != nil {
		return fail(err)
	}
	if err := dev.Sync(); err != nil {
		return fail(err)
	}
	ckpt, err := readCheckpoint(dev, sb, chosen)
	if err != nil {
		return fail(err)
	}
	v := &Volume{dev: dev, lk: lk, slot: chosen, node: node, jseq: ckpt, hb: hb, label: sb.Label, nsv: &nsView{}}
	v.sbp.Store(sb)
	lk.onAcquire = func(k int64) error {
		if k == keySlotTable || k == keyNS || (k >= keyAGBase && k < keyFileBase) || (k >= keyDomainBase && k < keyDomainBase+MaxSlots) {
			return v.recoverDead()
		}
		return nil
	}
	return v, nil
}

// Unmount releases the slot. Open files become unusable.
func (v *Volume) Unmount() error { return v.leave(SlotFree, "") }

// Crash abandons the mount as a dying node would: no slot release, no
// unmount record; the kernel-visible liveness lock is dropped. Tests and
// the lab's "fail host" use it.
func (v *Volume) Crash() {
	if v.closed.Swap(true) {
		return
	}
	v.dropView()
	close(v.hbStop)
	<-v.hbDone
	if a, ok := v.lk.cl.(interface{ abandon() }); ok {
		a.abandon() // leases stay on disk as a dead node leaves them
		return
	}
	if a, ok := v.lk.cl.(interface{ Abandon() }); ok {
		a.Abandon() // managers outside this package (etcdlock): leases expire by themselves
		return
	}
	v.lk.close()
}

// SetLabel changes the volume label (both superblock copies).
func (v *Volume) SetLabel(label string) error {
	if err := validLabel(label); err != nil {
		return err
	}
	if err := v.live(); err != nil {
		return err
	}
	return v.rewriteSB(func(sb *Superblock) error {
		sb.Label = label
		return nil
	})
}

// Recover replays the journal of a slot whose node is gone and frees the
// slot. It refuses a slot whose node is alive.
func Recover(dev Device, slot int, opts ...MountOptions) error {
	lk, err := firstOpts(opts).lockMgr(dev, "")
	if err != nil {
		return err
	}
	defer lk.close()
	if err := lk.lock(keySlotTable, true); err != nil {
		return err
	}
	defer lk.unlock(keySlotTable, true)
	sb, err := ReadSuperblock(dev)
	if err != nil {
		return err
	}
	if slot < 0 || slot >= int(sb.SlotCount) {
		return fmt.Errorf("%w: slot %d outside 0..%d", ErrInvalid, slot, sb.SlotCount-1)
	}
	return recoverOne(dev, lk, sb, slot)
}

func recoverOne(dev Device, lk *lockMgr, sb *Superblock, slot int) error {
	got, err := lk.cl.BeginRecovery(slot)
	if err != nil {
		return err
	}
	if !got {
		return fmt.Errorf("%w: slot %d is held by a live node", ErrMounted, slot)
	}
	defer lk.cl.EndRecovery(slot)
	if _, err := recoverSlotJournal(dev, sb, slot); err != nil {
		return err
	}
	if err := repairSuperblocks(dev, sb); err != nil {
		return err
	}
	e, err := readSlot(dev, sb, slot)
	if err != nil || e.State != SlotFree {
		e = SlotEntry{State: SlotFree, MountGen: e.MountGen, Gen: e.Gen + 1}
		if err := writeSlot(dev, sb, slot, e); err != nil {
			return err
		}
	}
	if h, err := readHeartbeat(dev, sb, slot); err != nil || h.Active {
		h = Heartbeat{Node: h.Node, Counter: h.Counter + 1, MountGen: h.MountGen, Timestamp: time.Now()}
		if err := writeHeartbeat(dev, sb, slot, h); err != nil {
			return err
		}
	}
	return dev.Sync()
}

// RecoverAll recovers every slot whose node is gone; live slots are left
// alone. It returns the slots it recovered.
func RecoverAll(dev Device, opts ...MountOptions) ([]int, error) {
	lk, err := firstOpts(opts).lockMgr(dev, "")
	if err != nil {
		return nil, err
	}
	defer lk.close()
	if err := lk.lock(keySlotTable, true); err != nil {
		return nil, err
	}
	defer lk.unlock(keySlotTable, true)
	sb, err := ReadSuperblock(dev)
	if err != nil {
		return nil, err
	}
	var done []int
	for s := 0; s < int(sb.SlotCount); s++ {
		err := recoverOne(dev, lk, sb, s)
		if errorsIs(err, ErrMounted) {
			continue
		}
		if err != nil {
			return done, err
		}
		done = append(done, s)
	}
	return done, nil
}

func firstOpts(opts []MountOptions) MountOptions {
	if len(opts) > 0 {
		return opts[0]
	}
	return MountOptions{}
}

// lockMgr makes the in-process lock layer over the options' manager.
func (o MountOptions) lockMgr(dev Device, node string) (*lockMgr, error) {
	f := o.Locks
	if f == nil {
		f = NewOFDLocks
	}
	cl, err := f(dev, node)
	if err != nil {
		return nil, err
	}
	lm := newLockMgr(cl)
	lm.onEvent = o.OnEvent
	return lm, nil
}
