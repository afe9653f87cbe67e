package kayofs

import (
	"bytes"
	"errors"
	"fmt"
	"log"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DiskLeases is the LockManager that needs nothing but the LUN: leases in
// the volume's lease area (leaserec.go), read and written with direct I/O
// so hosts with separate kernels see each other's writes.
//
// Host liveness: each mount first takes a host id by a delta lease
// (sanlock's algorithm: read the record; if it is held, watch it for
// Timeout+Margin and take it only if it never changed; write it; wait
// 2×IOTimeout; re-read: another writer means it lost the race) and renews
// it every Renew. Every renewal also reads all hosts' records: a host whose
// record has not changed for Timeout+Margin of watching is dead.
//
// Self-fencing: a mount whose last renewal that completed within
// IOTimeout started Timeout ago or more stops writing: Fenced returns
// ErrFenced and the Volume refuses every write. Others declare it dead only
// Timeout+Margin after they first saw its last record, confirmed by a fresh
// read, so Margin covers a renewal write in flight (IOTimeout) and clock
// rate differences. What it does not cover: a process stopped between its
// fence check and the write it then issues (sanlock's watchdog resets the
// host for that; Kayo FS has no watchdog): the check and the write are
// adjacent, so the window is one system call long.
//
// Locks: on a version-4 volume every lock key maps onto the lease of its
// lease domain (leasedom.go: the namespace, runs of inodes, ranges of
// groups, recovery), on older ones onto one cluster-wide "metadata lease"
// (the in-process layer keeps the keys apart inside a mount). Each lease is
// taken by Disk Paxos over the hosts' blocks (paxos.go): it needs only
// atomic sector reads and writes, no compare-and-write. A mount keeps a
// lease after its last unlock until another host asks (its request
// record), at least MinHold, so one busy node pays for the ballot once.
// A dead holder's lease is taken over once its host lease expired; the
// taker replays its journal first (the in-process layer's onAcquire).
type DiskLeases struct {
	o    DiskLeaseOptions
	f    *os.File
	uuid [16]byte
	base int64
	node string
	host int
	gen  uint64
	mine deltaRec // this mount's host lease as last written
	tool bool     // Recover/RecoverAll/Slots: no mount; waits to judge hosts

	epoch     time.Time
	lastRenew atomic.Int64 // since epoch: start of the last renewal done in time
	fenceMu   sync.Mutex
	fenced    error

	obsMu sync.Mutex
	obs   [MaxSlots]hostObs

	// perDomain: a version-4 volume, one lease per lease domain
	// (leasedom.go); else doms holds the one metadata lease.
	perDomain bool
	dbMu      sync.Mutex
	dbuf      []byte // version 4: this host's Disk Paxos block record as written

	mu         sync.Mutex
	cond       *sync.Cond
	doms       []*dlease
	owners     [MaxSlots]slotOwner
	ownersSeq  uint64
	ownersRead time.Time // when owners was last read outside the namespace lease

	stop, done chan struct{}
	closeOnce  sync.Once
}

// hostObs is what this manager saw of a host's delta lease.
type hostObs struct {
	raw     []byte
	changed int64 // since epoch: when raw was first seen
	logged  uint64
	waited  uint64 // generation+1 whose silence was reported (LeaseRecoveryWait)
	fenced  uint64 // generation+1 fenced at the storage (FenceHost)
}

// DiskLeaseOptions tune the on-disk lease manager.
type DiskLeaseOptions struct {
	// Timeout: a mount that has not renewed its host lease for Timeout
	// fences itself; other hosts take it for dead after Timeout+Margin of
	// watching its lease not change. Default 10s.
	Timeout time.Duration
	Margin  time.Duration // default Timeout/2
	// Renew is the renewal period (default Timeout/4); IOTimeout bounds a
	// lease write (default Margin/4): a slower renewal does not count.
	Renew, IOTimeout time.Duration
	// MinHold: a mount keeps a lease at least this long after winning it,
	// even when asked for it (GFS2's glock hold time): nodes taking turns
	// then each get a run of operations per ballot. Default DefaultMinHold.
	MinHold time.Duration
	// Logf receives what the manager decides: taking over a dead host's
	// leases, fencing itself. Default: the standard logger.
	Logf func(format string, args ...any)
	// OnEvent receives LeaseFenced (this mount fenced itself) and
	// LeaseRecoveryWait (a host it needs stopped renewing; events.go).
	OnEvent func(LeaseEvent)
	// FenceHost, when the storage can fence (a SAN preempting a host's
	// SCSI-3 persistent reservation), cuts node's incarnation gen off the
	// volume before this mount takes anything of it: a host frozen with a
	// write issued but not yet sent (inside its kernel, or a paused VM's
	// QEMU) can send it when it resumes, and no check inside that host
	// can stop it. Until it returns nil the host is not taken for dead.
	// Nil: self-fencing and the timeout alone (internal/santest is the
	// SAN double the torture rig fences with).
	FenceHost func(node string, gen uint64) error
}

func (o *DiskLeaseOptions) defaults() {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Margin <= 0 {
		o.Margin = o.Timeout / 2
	}
	if o.Renew <= 0 {
		o.Renew = o.Timeout / 4
	}
	if o.IOTimeout <= 0 {
		o.IOTimeout = o.Margin / 4
	}
	if o.Logf == nil {
		o.Logf = log.Printf
	}
	if o.MinHold <= 0 {
		o.MinHold = DefaultMinHold
	}
}

// DefaultMinHold is the lock managers' default minimum hold (the on-disk
// leases', etcdlock's). A hand-over of a lease costs the waiter a request,
// the holder's next look at it (MinHold/32 when busy, MinHold/8 idle) and
// a ballot (two block writes and two reads of every host's blocks, then
// the leader): a few milliseconds of direct I/O on a LUN, not counting the
// work the holder stops. Nodes that both
// create and delete files meet on the namespace lease at every operation;
// with a 20 ms hold two of them spent more time handing it over than
// working (two nodes slower than one, BenchmarkLockManagers). 100 ms is
// GFS2's default glock hold time (HZ/10): the hand-over stays a small part
// of each turn. A holder that has not used a lease for MinHold/4 hands it
// over without waiting out the hold (yieldIdle), so a node that asks for
// the lease of one done with its work waits tens of milliseconds, and one
// that asks a busy node at most about MinHold.
const DefaultMinHold = 100 * time.Millisecond

var errLeaseBusy = errors.New("kayofs: host lease busy")

// NewDiskLeases returns the factory of on-disk lease managers, the lock
// manager for hosts that share the LUN and nothing else.
func NewDiskLeases(o DiskLeaseOptions) LockManagerFactory {
	o.defaults()
	return func(dev Device, node string) (LockManager, error) { return openDiskLeases(dev, node, o) }
}

func openDiskLeases(dev Device, node string, o DiskLeaseOptions) (*DiskLeases, error) {
	pd, err := pathDevice(dev)
	if err != nil {
		return nil, err
	}
	if fd, ok := dev.(*FileDevice); ok && fd.dio == nil {
		// another kernel's page cache would serve stale metadata
		return nil, fmt.Errorf("%w: on-disk leases need the device opened with OpenDeviceDirect (%s)", ErrInvalid, pd.Path())
	}
	sb, err := ReadSuperblock(dev)
	if err != nil {
		return nil, err
	}
	if sb.leaseBlocks() == 0 {
		return nil, fmt.Errorf("%w: volume format version %d has no lease area: on-disk leases need version 2 (reformat)", ErrInvalid, sb.Version)
	}
	f, err := openDirect(pd.Path(), os.O_SYNC)
	if err != nil {
		return nil, fmt.Errorf("kayofs: opening %s for lease I/O: %w", pd.Path(), err)
	}
	tool := node == ""
	if tool {
		node = fmt.Sprintf("kayofs-tool-%d", os.Getpid())
	}
	m := &DiskLeases{o: o, f: f, uuid: sb.UUID, base: int64(sb.leaseStart()) * int64(sb.BlockSize), node: node, tool: tool,
		perDomain: sb.LeaseDomains(), epoch: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	m.cond = sync.NewCond(&m.mu)
	n := 1
	if m.perDomain {
		n = leaseDomains
	}
	for d := 0; d < n; d++ {
		m.doms = append(m.doms, &dlease{d: d})
	}
	if err := m.join(); err != nil {
		f.Close()
		return nil, err
	}
	if m.perDomain {
		if err := m.loadDbuf(); err != nil {
			f.Close()
			return nil, err
		}
	}
	go m.renewLoop()
	go m.watchdog()
	return m, nil
}

// watchdog judges the lease on a clock of its own: a renewal stuck in I/O
// (a LUN that stopped answering) holds renewLoop up, and the mount must
// still fence itself, and say so, when its timeout passes.
func (m *DiskLeases) watchdog() {
	t := time.NewTicker(max(m.o.Renew/2, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			if m.Fenced() != nil {
				return
			}
		}
	}
}

func (m *DiskLeases) now() int64 { return int64(time.Since(m.epoch)) }

func (m *DiskLeases) readRecs(first, n int) ([]byte, error) {
	b := alignedBuf(n * recSize)
	if _, err := m.f.ReadAt(b, m.base+int64(first)*recSize); err != nil {
		return nil, fmt.Errorf("kayofs: reading lease records %d..%d: %w", first, first+n-1, err)
	}
	return b, nil
}

// writeRec writes lease record i, unless this mount has fenced itself.
// The check sits right before each write, not only at the top of a ballot
// or a renewal: a host frozen (SIGSTOP, a stalled VM) in the middle of one
// must not finish it with stale reads once another host took its lease.
func (m *DiskLeases) writeRec(i int, b []byte) error {
	if err := m.Fenced(); err != nil {
		return err
	}
	return m.writeRecUnfenced(i, b)
}

// writeRecUnfenced writes without the fence check: only join's own host
// lease acquisition, which runs before this mount holds any lease.
func (m *DiskLeases) writeRecUnfenced(i int, b []byte) error {
	if _, err := m.f.WriteAt(b[:recSize], m.base+int64(i)*recSize); err != nil {
		return fmt.Errorf("kayofs: writing lease record %d: %w", i, err)
	}
	return nil
}

func (m *DiskLeases) readDelta(h int) (deltaRec, []byte, error) {
	b, err := m.readRecs(recDelta(h), 1)
	if err != nil {
		return deltaRec{}, nil, err
	}
	r, err := decDelta(b, m.uuid)
	return r, b[:recCRCBytes], err
}

// join takes a host id: the one whose lease names this node (its previous
// process; waiting out its lease), else a free one.
func (m *DiskLeases) join() error {
	b, err := m.readRecs(0, MaxSlots)
	if err != nil {
		return err
	}
	var mine, free []int
	for h := 0; h < MaxSlots; h++ {
		r, err := decDelta(b[h*recSize:], m.uuid)
		switch {
		case err != nil:
		case r.Node == m.node:
			mine = append(mine, h)
		case r.free():
			free = append(free, h)
		}
	}
	for _, h := range append(mine, free...) {
		err := m.acquireDelta(h)
		if err == nil {
			return nil
		}
		if !errors.Is(err, errLeaseBusy) {
			return err
		}
	}
	return fmt.Errorf("%w: no free host lease on the volume (%d hosts)", ErrNoSlot, MaxSlots)
}

// acquireDelta is sanlock's delta lease acquisition (delta_lease.c).
func (m *DiskLeases) acquireDelta(h int) error {
	r, raw, err := m.readDelta(h)
	if err != nil {
		return err
	}
	if !r.free() {
		wait := m.o.Timeout + m.o.Margin
		m.o.Logf("kayofs: host lease %d is held by %s; watching it %v for renewals before taking it", h, r.Node, wait)
		end := time.Now().Add(wait)
		for time.Now().Before(end) {
			time.Sleep(min(m.o.Renew, time.Until(end)))
			r2, raw2, err := m.readDelta(h)
			if err != nil {
				return err
			}
			if r2.free() {
				r = r2
				break
			}
			if string(raw2) != string(raw) {
				return fmt.Errorf("%w: host lease %d renewed by %s", errLeaseBusy, h, r2.Node)
			}
		}
	}
	nr := deltaRec{Gen: r.Gen + 1, Stamp: uint64(time.Now().UnixNano()), Counter: r.Counter + 1, Node: m.node}
	b := alignedBuf(recSize)
	encDelta(b, m.uuid, nr)
	start := m.now()
	if err := m.writeRecUnfenced(recDelta(h), b); err != nil {
		return err
	}
	time.Sleep(2 * m.o.IOTimeout)
	_, raw2, err := m.readDelta(h)
	if err != nil {
		return err
	}
	if string(raw2) != string(b[:recCRCBytes]) {
		return fmt.Errorf("%w: host lease %d taken concurrently", errLeaseBusy, h)
	}
	m.host, m.gen = h, nr.Gen
	m.lastRenew.Store(start)
	m.mine = nr
	return nil
}

// renewLoop renews the host lease, watches the others' and hands the
// metadata lease over when another host asked for it while it is idle.
func (m *DiskLeases) renewLoop() {
	defer close(m.done)
	// An idle holder looks for requests every MinHold/8, not only at each
	// renewal: otherwise a host asking for the lease of an idle one waits
	// up to Renew (seconds) for every handoff.
	t := time.NewTicker(min(m.o.Renew, max(m.o.MinHold/8, time.Millisecond)))
	defer t.Stop()
	var renewed time.Time
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		if m.Fenced() != nil {
			return
		}
		due := time.Since(renewed) >= m.o.Renew
		if due {
			renewed = time.Now()
			m.renew()
		}
		m.mu.Lock()
		m.yieldIdle()
		for _, l := range m.doms {
			if due && l.touched && !l.held && !l.acquiring {
				m.freeStale(l)
			}
		}
		m.mu.Unlock()
	}
}

// freeStale frees a leader record naming this mount as holder while it
// does not hold the lease (a ballot that committed a version after its
// release): otherwise other hosts would wait for a release that never
// comes. Caller holds m.mu.
func (m *DiskLeases) freeStale(l *dlease) {
	b, err := m.readRecs(m.recLeaderOf(l.d), 1)
	if err != nil {
		return
	}
	if ld, err := decLeader(b, m.uuid); err == nil && !ld.Free && ld.Owner == m.host+1 && ld.Gen == m.gen {
		l.lver = ld.Lver
		m.release(l)
	}
}

func (m *DiskLeases) renew() {
	start := m.now()
	b, err := m.readRecs(0, MaxSlots)
	if err != nil {
		m.o.Logf("kayofs: node %s: renewing host lease %d: %v", m.node, m.host, err)
		return
	}
	cur, err := decDelta(b[m.host*recSize:], m.uuid)
	if err != nil || cur.Gen != m.gen || cur.Node != m.node {
		m.fence(fmt.Sprintf("host lease %d was taken by %q (generation %d)", m.host, cur.Node, cur.Gen))
		return
	}
	if m.Fenced() != nil {
		return
	}
	nr := m.mine
	nr.Counter++
	nr.Stamp = uint64(time.Now().UnixNano())
	w := alignedBuf(recSize)
	encDelta(w, m.uuid, nr)
	if err := m.writeRec(recDelta(m.host), w); err != nil {
		m.o.Logf("kayofs: node %s: renewing host lease %d: %v", m.node, m.host, err)
		return
	}
	m.mine = nr
	if took := m.now() - start; took > int64(m.o.IOTimeout) {
		m.o.Logf("kayofs: node %s: host lease renewal took %v (more than %v): not counted", m.node, time.Duration(took), m.o.IOTimeout)
	} else {
		m.lastRenew.Store(start)
	}
	m.observe(b)
}

// observe records which host leases changed since the last look.
func (m *DiskLeases) observe(b []byte) {
	m.obsMu.Lock()
	defer m.obsMu.Unlock()
	now := m.now()
	for h := 0; h < MaxSlots; h++ {
		raw := b[h*recSize : h*recSize+recCRCBytes]
		o := &m.obs[h]
		if o.raw == nil || string(o.raw) != string(raw) {
			o.raw = bytes.Clone(raw) // never in place: hostDead reads a copy of obs without obsMu
			o.changed = now
		}
	}
}

// fence stops this mount's writes for good.
func (m *DiskLeases) fence(why string) {
	m.fenceMu.Lock()
	if m.fenced != nil {
		m.fenceMu.Unlock()
		return
	}
	m.fenced = fmt.Errorf("%w (node %s, host lease %d: %s)", ErrFenced, m.node, m.host, why)
	m.fenceMu.Unlock()
	m.o.Logf("kayofs: node %s fenced itself: %s; every write to the volume now fails with EIO-like errors until it is mounted again", m.node, why)
	emit(m.o.OnEvent, LeaseEvent{Kind: LeaseFenced, Node: m.node, Slot: -1, Lease: m.o.Timeout, Margin: m.o.Margin, Why: why})
}

// noteSilent reports, once per incarnation, that host h (gen, node) has
// missed renewals for silent and so will be taken for dead (and its slot
// recovered) only after Timeout+Margin of silence.
func (m *DiskLeases) noteSilent(h int, node string, gen uint64, silent time.Duration) {
	if m.o.OnEvent == nil || silent < 2*m.o.Renew+m.o.IOTimeout {
		return
	}
	m.obsMu.Lock()
	o := &m.obs[h]
	first := o.waited != gen+1
	o.waited = gen + 1
	m.obsMu.Unlock()
	if !first {
		return
	}
	dead := m.o.Timeout + m.o.Margin
	emit(m.o.OnEvent, LeaseEvent{Kind: LeaseRecoveryWait, Node: m.node, Peer: node, Slot: -1, Lease: m.o.Timeout, Margin: m.o.Margin,
		Wait: max(0, dead-silent), Why: fmt.Sprintf("host lease %d (generation %d) unchanged for %v", h, gen, silent.Round(time.Millisecond))})
}

func (m *DiskLeases) Fenced() error {
	if since := time.Duration(m.now() - m.lastRenew.Load()); since >= m.o.Timeout {
		m.fence(fmt.Sprintf("host lease not renewed for %v (timeout %v)", since.Round(time.Millisecond), m.o.Timeout))
	}
	m.fenceMu.Lock()
	defer m.fenceMu.Unlock()
	return m.fenced
}

// hostDead reports whether host h's incarnation gen is gone: its lease is
// free, belongs to a later incarnation, or stayed unchanged for
// Timeout+Margin of watching (confirmed by reading it again now).
func (m *DiskLeases) hostDead(h int, gen uint64) (bool, error) {
	if h == m.host && gen == m.gen {
		return false, nil
	}
	dead := m.o.Timeout + m.o.Margin
	m.obsMu.Lock()
	o := m.obs[h]
	m.obsMu.Unlock()
	if silent := time.Duration(m.now() - o.changed); o.raw != nil && silent < dead {
		if r, err := decDelta(o.raw, m.uuid); err == nil && !r.free() && r.Gen == gen {
			m.noteSilent(h, r.Node, gen, silent)
			return false, nil
		}
	}
	b, err := m.readRecs(recDelta(h), 1)
	if err != nil {
		return false, err
	}
	m.observe1(h, b[:recCRCBytes])
	r, err := decDelta(b, m.uuid)
	if err != nil {
		return false, err
	}
	if r.free() || r.Gen != gen {
		return true, nil
	}
	m.obsMu.Lock()
	o2 := &m.obs[h]
	if silent := time.Duration(m.now() - o2.changed); silent < dead {
		m.obsMu.Unlock()
		m.noteSilent(h, r.Node, gen, silent)
		return false, nil
	}
	if o2.logged != gen+1 {
		o2.logged = gen + 1
		m.o.Logf("kayofs: node %s: host %d (%s, generation %d) is dead: its lease has not changed for %v (timeout %v + safety margin %v); recovering it",
			m.node, h, r.Node, gen, time.Duration(m.now()-o2.changed).Round(time.Millisecond), m.o.Timeout, m.o.Margin)
	}
	done := o2.fenced == gen+1
	m.obsMu.Unlock()
	if m.o.FenceHost == nil || done {
		return true, nil
	}
	if err := m.o.FenceHost(r.Node, gen); err != nil {
		return false, fmt.Errorf("kayofs: node %s: fencing dead host %d (%s, generation %d) at the storage: %w", m.node, h, r.Node, gen, err)
	}
	m.o.Logf("kayofs: node %s: host %d (%s, generation %d) fenced at the storage", m.node, h, r.Node, gen)
	m.obsMu.Lock()
	m.obs[h].fenced = gen + 1
	m.obsMu.Unlock()
	return true, nil
}

func (m *DiskLeases) observe1(h int, raw []byte) {
	m.obsMu.Lock()
	defer m.obsMu.Unlock()
	o := &m.obs[h]
	if o.raw == nil || string(o.raw) != string(raw) {
		o.raw = bytes.Clone(raw)
		o.changed = m.now()
	}
}

// owner returns slot s's owner: from the table this mount keeps while it
// holds the namespace's (or the metadata) lease (only a holder changes
// it), else read now; !fresh: a table read less than Renew ago will do.
// OwnerLive runs at every newly taken metadata lock, and on a version-5
// volume a node working in its own directory holds no namespace lease:
// a read per lock per other slot slowed two such nodes more than their
// locks did. An older table is safe there: a slot it calls owned is
// judged by its owner's host lease, which a dead or departed owner no
// longer renews, and a slot it calls ownerless is judged again from a
// fresh table (judgeOwner) before anyone recovers it.
func (m *DiskLeases) owner(s int, fresh bool) (slotOwner, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.doms[ldNS].held && (fresh || time.Since(m.ownersRead) >= m.o.Renew) {
		if err := m.loadOwners(); err != nil {
			return slotOwner{}, err
		}
		m.ownersRead = time.Now()
	}
	return m.owners[s], nil
}

func (m *DiskLeases) OwnerLive(s int) bool {
	o, err := m.owner(s, false)
	if err != nil {
		return true
	}
	if o.Host == 0 || (o.Host-1 == m.host && o.Gen == m.gen) {
		return false
	}
	dead, err := m.hostDead(o.Host-1, o.Gen)
	return err != nil || !dead
}

// BeginRecovery: before version 4 the caller holds the metadata lease, so
// no one else claims or recovers a slot meanwhile. On a version-4 volume
// hosts holding different domains could replay one dead slot's journal at
// once (and the slower one write an old image over a newer block), so a
// recovery also takes the recovery domain's lease, last in the lock order
// (its holder only replays), and judges the owner again under it: a host
// that recovered the slot meanwhile may have let it be claimed.
func (m *DiskLeases) BeginRecovery(s int) (bool, error) {
	dead, err := m.judgeOwner(s, m.tool)
	if !dead || err != nil || !m.perDomain {
		return dead, err
	}
	l := m.doms[ldRecovery]
	if _, err := m.take(l, true); err != nil {
		return false, err
	}
	if dead, err = m.judgeOwner(s, false); !dead || err != nil {
		m.drop(l)
	}
	return dead, err
}

func (m *DiskLeases) EndRecovery(int) {
	if m.perDomain {
		m.drop(m.doms[ldRecovery])
	}
}

// drop ends one hold of l (Unlock by domain).
func (m *DiskLeases) drop(l *dlease) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l.refs--
	if l.refs == 0 {
		l.lastUse = time.Now()
	}
	m.maybeYield(l)
}

// judgeOwner reports whether slot s has no live owner; watch: a tool that
// has not watched the hosts before watches the owner's lease first.
func (m *DiskLeases) judgeOwner(s int, watch bool) (bool, error) {
	o, err := m.owner(s, true)
	if err != nil {
		return false, err
	}
	if o.Host == 0 {
		return true, nil
	}
	if o.Host-1 == m.host && o.Gen == m.gen {
		return false, nil
	}
	dead, err := m.hostDead(o.Host-1, o.Gen)
	if dead || err != nil || !watch {
		return dead, err
	}
	// A tool (kayoctl's recover) has not watched the host before: watch it
	// for Timeout+Margin now, as a mount's renewals would have.
	start := m.now()
	m.o.Logf("kayofs: %s: watching host %d's lease for up to %v before judging slot %d's owner", m.node, o.Host-1, m.o.Timeout+m.o.Margin, s)
	for time.Duration(m.now()-start) <= m.o.Timeout+m.o.Margin+m.o.Renew {
		time.Sleep(m.o.Renew)
		if dead, err = m.hostDead(o.Host-1, o.Gen); dead || err != nil {
			return dead, err
		}
		m.obsMu.Lock()
		renewed := m.obs[o.Host-1].changed > start
		m.obsMu.Unlock()
		if renewed {
			return false, nil
		}
	}
	return false, nil
}

// ClaimSlot records this host as s's owner (the caller holds the slot
// table lock, i.e. the metadata lease).
func (m *DiskLeases) ClaimSlot(s int) (bool, error) {
	if err := m.Fenced(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.doms[ldNS].held {
		return false, fmt.Errorf("kayofs: claiming slot %d without the namespace lease", s)
	}
	o := m.owners[s]
	if o.Host != 0 && !(o.Host-1 == m.host && o.Gen == m.gen) {
		m.mu.Unlock()
		dead, err := m.hostDead(o.Host-1, o.Gen)
		m.mu.Lock()
		if err != nil || !dead {
			return false, err
		}
	}
	m.owners[s] = slotOwner{Host: m.host + 1, Gen: m.gen}
	return true, m.writeOwners()
}

func (m *DiskLeases) ReleaseSlot(s int) {
	if m.Fenced() != nil {
		return
	}
	if err := m.Lock(keySlotTable, true); err != nil {
		return
	}
	m.mu.Lock()
	if o := m.owners[s]; o.Host-1 == m.host && o.Gen == m.gen {
		m.owners[s] = slotOwner{}
		_ = m.writeOwners()
	}
	m.mu.Unlock()
	m.Unlock(keySlotTable, true)
}

// Close releases the metadata lease and frees the host lease.
func (m *DiskLeases) Close() error {
	m.closeOnce.Do(func() {
		close(m.stop)
		<-m.done
		if m.Fenced() == nil {
			m.mu.Lock()
			for _, l := range m.doms {
				if l.held {
					m.release(l)
				}
			}
			m.mu.Unlock()
			b := alignedBuf(recSize)
			encDelta(b, m.uuid, deltaRec{Gen: m.gen, Counter: m.mine.Counter + 1, Node: m.node})
			_ = m.writeRec(recDelta(m.host), b)
		}
		m.f.Close()
	})
	return nil
}

// abandon stops renewing and keeps every lease as it is: what a crash
// leaves on disk (Volume.Crash).
func (m *DiskLeases) abandon() {
	m.closeOnce.Do(func() {
		close(m.stop)
		<-m.done
		m.f.Close()
	})
}
