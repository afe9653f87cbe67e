package kayofs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// Journal layout (JournalBlocks per slot, reserved for all MaxSlots):
//
//	[0],[1]  checkpoint headers, written alternately (seq%2); the valid one
//	         with the higher generation is the checkpoint sequence
//	[2]      descriptor: txn sequence, image count, (target block, crc32c)
//	[3..3+n) full images of the metadata blocks the transaction writes
//	[3+n]    commit: sequence, count, crc32c of the descriptor and of all
//	         image checksums
//
// A transaction is: write descriptor+images+commit, sync; write the blocks
// in place, sync; write the checkpoint header (seq); only then release the
// cluster locks. A descriptor with seq > checkpoint whose commit and images
// all verify is a committed transaction that must be replayed before
// anyone reads the blocks it covers; anything else is an uncommitted tail
// and is ignored. Journals are never zero-filled: stale records carry an
// old sequence or another volume's UUID.
//
// The checkpoint needs no sync of its own. Until it is durable a power
// loss can only make the transaction replay again, which rewrites what its
// synced in-place writes already hold, unless a later write to one of its
// blocks became durable first. It cannot: every later in-place write of a
// metadata block (the next transaction, by this node or another, or the
// replay of a dead node's) comes after a journal sync, and that sync
// follows the checkpoint write (the checkpoint is written before the
// locks go, and the later writer took them after). A block this
// transaction wrote is reused for file data only after a later
// transaction freed it, past that transaction's journal sync.
const (
	jdescHdr   = 64
	jdescEntry = 12
)

// testHookAfterJournal lets tests stop a commit after the journal write
// (committed, not applied in place), as a crash there would.
var (
	testHookAfterJournal func(*Volume) bool
	errTestCrash         = errors.New("kayofs: test crash after journal commit")
)

type pendingTxn struct {
	seq    uint64
	ckpt   uint64
	blocks []uint64
	images [][]byte
}

type jdesc struct {
	seq    uint64
	blocks []uint64
	crcs   []uint32
	rawCRC uint32
}

// decodeJDesc decodes a journal descriptor block. fresh=true when the
// block never belonged to this volume.
func decodeJDesc(b []byte, uuid [16]byte, blkno uint64, maxImgs int) (d jdesc, fresh bool, err error) {
	st, why := checkBlock(b, tJDesc, uuid, blkno)
	switch st {
	case blockFresh:
		return d, true, nil
	case blockCorrupt:
		return d, false, fmt.Errorf("%w: journal descriptor %d: %s", ErrCorrupt, blkno, why)
	}
	le := binary.LittleEndian
	n := int(le.Uint32(b[48:]))
	if n < 1 || n > maxImgs || jdescHdr+n*jdescEntry > len(b) {
		return d, false, fmt.Errorf("%w: journal descriptor %d: %d images (max %d)", ErrCorrupt, blkno, n, maxImgs)
	}
	d.seq = blockGen(b)
	d.rawCRC = crc32c(b)
	seen := map[uint64]bool{}
	for i := 0; i < n; i++ {
		o := jdescHdr + i*jdescEntry
		blk := le.Uint64(b[o:])
		if seen[blk] {
			return d, false, fmt.Errorf("%w: journal descriptor %d: block %d listed twice", ErrCorrupt, blkno, blk)
		}
		seen[blk] = true
		d.blocks = append(d.blocks, blk)
		d.crcs = append(d.crcs, le.Uint32(b[o+8:]))
	}
	return d, false, nil
}

func decodeJCommit(b []byte, uuid [16]byte, blkno uint64) (seq uint64, n uint32, descCRC, imgCRC uint32, err error) {
	st, why := checkBlock(b, tJCommit, uuid, blkno)
	if st != blockValid {
		if why == "" {
			why = "not written"
		}
		return 0, 0, 0, 0, fmt.Errorf("%w: journal commit %d: %s", ErrCorrupt, blkno, why)
	}
	le := binary.LittleEndian
	return blockGen(b), le.Uint32(b[48:]), le.Uint32(b[52:]), le.Uint32(b[56:]), nil
}

func imagesCRC(crcs []uint32) uint32 {
	b := make([]byte, 4*len(crcs))
	for i, c := range crcs {
		binary.LittleEndian.PutUint32(b[4*i:], c)
	}
	return crc32c(b)
}

// journaled reports whether blk is a metadata block journals may target.
// Extent-tree blocks live in the groups' data areas, so any block of the
// volume past the journals qualifies.
func (sb *Superblock) journaled(blk uint64) bool {
	return blk >= sb.nsBlock() && blk < sb.TotalBlocks
}

// readCheckpoint returns the checkpoint sequence of slot s's journal.
func readCheckpoint(dev Device, sb *Superblock, s int) (uint64, error) {
	st := sb.journalStart(s)
	var best uint64
	bad := 0
	for i := uint64(0); i < 2; i++ {
		b, err := readBlock(dev, sb.bs(), st+i)
		if err != nil {
			return 0, err
		}
		switch state, _ := checkBlock(b, tJHeader, sb.UUID, st+i); state {
		case blockValid:
			best = max(best, blockGen(b))
		case blockCorrupt:
			bad++
		}
	}
	if bad == 2 {
		return 0, fmt.Errorf("%w: slot %d: both journal checkpoint headers are corrupt", ErrCorrupt, s)
	}
	return best, nil
}

// readPending returns slot s's committed-but-not-checkpointed transaction,
// or nil when the journal is clean.
func readPending(dev Device, sb *Superblock, s int) (*pendingTxn, error) {
	ckpt, err := readCheckpoint(dev, sb, s)
	if err != nil {
		return nil, err
	}
	st := sb.journalStart(s)
	bs := sb.bs()
	maxImgs := int(sb.JournalBlocks) - 4
	db, err := readBlock(dev, bs, st+2)
	if err != nil {
		return nil, err
	}
	d, fresh, err := decodeJDesc(db, sb.UUID, st+2, maxImgs)
	if err != nil || fresh || d.seq <= ckpt {
		return nil, nil // torn/never written descriptor: an uncommitted tail
	}
	n := len(d.blocks)
	raw := make([]byte, (n+1)*bs)
	if _, err := dev.ReadAt(raw, int64(st+3)*int64(bs)); err != nil {
		return nil, fmt.Errorf("kayofs: reading journal of slot %d: %w", s, err)
	}
	cseq, cn, dcrc, icrc, err := decodeJCommit(raw[n*bs:], sb.UUID, st+3+uint64(n))
	if err != nil || cseq != d.seq || int(cn) != n || dcrc != d.rawCRC || icrc != imagesCRC(d.crcs) {
		return nil, nil
	}
	p := &pendingTxn{seq: d.seq, ckpt: ckpt}
	for i, blk := range d.blocks {
		img := raw[i*bs : (i+1)*bs]
		if crc32c(img) != d.crcs[i] {
			return nil, nil
		}
		if !sb.journaled(blk) {
			// the transaction may postdate our view of the layout (another
			// node grew the volume): judge it by the superblock on disk
			if cur, err := ReadSuperblock(dev); err == nil && cur.UUID == sb.UUID && cur.TotalBlocks > sb.TotalBlocks {
				sb = cur
			}
		}
		if !sb.journaled(blk) {
			return nil, fmt.Errorf("%w: slot %d: committed transaction %d targets block %d outside journaled metadata", ErrCorrupt, s, d.seq, blk)
		}
		if binary.LittleEndian.Uint64(img[24:]) != blk {
			return nil, fmt.Errorf("%w: slot %d: committed transaction %d: image for block %d names block %d", ErrCorrupt, s, d.seq, blk, binary.LittleEndian.Uint64(img[24:]))
		}
		p.blocks = append(p.blocks, blk)
		p.images = append(p.images, append([]byte(nil), img...))
	}
	return p, nil
}

func writeCheckpoint(dev Device, sb *Superblock, s int, seq uint64) error {
	blk := sb.journalStart(s) + seq%2
	b := make([]byte, sb.bs())
	binary.LittleEndian.PutUint32(b[48:], uint32(s))
	sealBlock(b, tJHeader, sb.UUID, blk, seq)
	return writeBlock(dev, sb.bs(), blk, b)
}

// replay applies a pending transaction in place and checkpoints it.
func replay(dev Device, sb *Superblock, s int, p *pendingTxn) error {
	for i, blk := range p.blocks {
		if err := writeBlock(dev, sb.bs(), blk, p.images[i]); err != nil {
			return err
		}
	}
	if err := dev.Sync(); err != nil {
		return err
	}
	if err := writeCheckpoint(dev, sb, s, p.seq); err != nil {
		return err
	}
	return dev.Sync()
}

// recoverSlotJournal replays slot s's journal if dirty. Caller holds the
// slot's recovery and liveness locks (or has the device to itself).
func recoverSlotJournal(dev Device, sb *Superblock, s int) (bool, error) {
	p, err := readPending(dev, sb, s)
	if err != nil || p == nil {
		return false, err
	}
	return true, replay(dev, sb, s, p)
}

// --- transactions ---------------------------------------------------------

type tblk struct {
	buf   []byte
	typ   uint32
	dirty bool
}

type heldLock struct {
	key  int64
	excl bool
	n    int // > 1: the run of n keys from key (lockNSAll)
}

type txn struct {
	v        *Volume
	blocks   map[uint64]*tblk
	held     []heldLock
	inTree   bool // allocating extent-tree blocks: the reserved room is for them
	trees    map[uint32]treeCacheEnt
	deferred []run // tree blocks to free after the commit (see freeTree)
	nsOp     bool  // holds Volume.nsOp (version 5, dirdom.go)
}

// slack is the room data allocation leaves for the extent-tree blocks the
// same transaction may still write.
func (t *txn) slack() int {
	if t.inTree {
		return 0
	}
	return treeSlack
}

func (v *Volume) newTxn() *txn { return &txn{v: v, blocks: map[uint64]*tblk{}} }

func (t *txn) lock(k int64, excl bool) error {
	if err := t.v.lk.lock(k, excl); err != nil {
		return err
	}
	t.held = append(t.held, heldLock{key: k, excl: excl})
	return nil
}

func (t *txn) tryLock(k int64) (bool, error) {
	ok, err := t.v.lk.tryLock(k)
	if ok {
		t.held = append(t.held, heldLock{key: k, excl: true})
	}
	return ok, err
}

func (t *txn) holds(k int64) bool {
	for _, h := range t.held {
		if h.key == k || h.n > 1 && k > h.key && k < h.key+int64(h.n) {
			return true
		}
	}
	return false
}

func (t *txn) drop(k int64) {
	for i, h := range t.held {
		if h.key == k && h.n <= 1 {
			t.v.lk.unlock(h.key, h.excl)
			t.held = append(t.held[:i], t.held[i+1:]...)
			return
		}
	}
}

// release drops every lock, newest first.
func (t *txn) release() {
	for i := len(t.held) - 1; i >= 0; i-- {
		if h := t.held[i]; h.n > 1 {
			t.v.lk.unlockRun(h.key, h.n)
		} else {
			t.v.lk.unlock(h.key, h.excl)
		}
	}
	t.held = nil
	if t.nsOp {
		t.nsOp = false
		t.v.nsv.op.Unlock()
	}
}

// get returns the block's buffer (shared with the transaction); fresh
// blocks come back zeroed. Corrupt blocks are an error, never trusted.
func (t *txn) get(blk uint64, typ uint32) ([]byte, bool, error) {
	if b, ok := t.blocks[blk]; ok {
		return b.buf, false, nil
	}
	bs := t.v.sbl().bs()
	b, err := readBlock(t.v.dev, bs, blk)
	if err != nil {
		return nil, false, err
	}
	st, why := checkBlock(b, typ, t.v.sbl().UUID, blk)
	fresh := false
	switch st {
	case blockCorrupt:
		return nil, false, fmt.Errorf("%w: block %d: %s", ErrCorrupt, blk, why)
	case blockFresh:
		b = make([]byte, bs)
		fresh = true
	}
	t.blocks[blk] = &tblk{buf: b, typ: typ}
	return b, fresh, nil
}

func (t *txn) dirty(blk uint64) {
	t.blocks[blk].dirty = true
}

func (t *txn) ndirty() int {
	n := 0
	for _, b := range t.blocks {
		if b.dirty {
			n++
		}
	}
	return n
}

// room is how many more blocks the transaction may dirty.
func (t *txn) room() int { return int(t.v.sbl().JournalBlocks) - 4 - t.ndirty() }

// commit journals and applies the dirty blocks. Locks stay held; the
// caller releases them afterwards (group locks may have been dropped when
// deferred tree-block frees ran: callers drop them after a commit anyway).
func (t *txn) commit() error {
	if err := t.commitOnce(); err != nil {
		return err
	}
	if len(t.deferred) > 0 {
		return t.freeDeferred()
	}
	return nil
}

func (t *txn) commitOnce() error {
	v := t.v
	var blks []uint64
	for blk, b := range t.blocks {
		if b.dirty {
			blks = append(blks, blk)
		}
	}
	if len(blks) == 0 {
		return nil
	}
	sb := v.sbl()
	bs := sb.bs()
	if len(blks) > int(sb.JournalBlocks)-4 {
		return fmt.Errorf("kayofs: internal error: transaction of %d blocks exceeds journal", len(blks))
	}
	sort.Slice(blks, func(i, j int) bool { return blks[i] < blks[j] })
	v.jmu.Lock()
	defer v.jmu.Unlock()
	if v.jfailed != nil {
		return v.jfailed
	}
	seq := v.jseq + 1
	st := sb.journalStart(v.slot)
	n := len(blks)
	raw := make([]byte, (n+2)*bs)
	desc := raw[:bs]
	le := binary.LittleEndian
	le.PutUint32(desc[48:], uint32(n))
	le.PutUint32(desc[52:], uint32(v.slot))
	crcs := make([]uint32, n)
	for i, blk := range blks {
		b := t.blocks[blk]
		sealBlock(b.buf, b.typ, sb.UUID, blk, blockGen(b.buf)+1)
		copy(raw[(i+1)*bs:], b.buf)
		crcs[i] = crc32c(b.buf)
		le.PutUint64(desc[jdescHdr+i*jdescEntry:], blk)
		le.PutUint32(desc[jdescHdr+i*jdescEntry+8:], crcs[i])
	}
	sealBlock(desc, tJDesc, sb.UUID, st+2, seq)
	com := raw[(n+1)*bs:]
	le.PutUint32(com[48:], uint32(n))
	le.PutUint32(com[52:], crc32c(desc))
	le.PutUint32(com[56:], imagesCRC(crcs))
	sealBlock(com, tJCommit, sb.UUID, st+3+uint64(n), seq)
	fail := func(err error) error {
		// After a failed write the journal state is unknown: refuse further
		// transactions on this mount (the next mount recovers).
		v.jfailed = fmt.Errorf("kayofs: journal of slot %d failed: %w", v.slot, err)
		return v.jfailed
	}
	if _, err := v.dev.WriteAt(raw, int64(st+2)*int64(bs)); err != nil {
		return fail(err)
	}
	if err := v.dev.Sync(); err != nil {
		return fail(err)
	}
	if testHookAfterJournal != nil && testHookAfterJournal(v) {
		return fail(errTestCrash)
	}
	for _, blk := range blks {
		if err := writeBlock(v.dev, bs, blk, t.blocks[blk].buf); err != nil {
			return fail(err)
		}
	}
	if err := v.dev.Sync(); err != nil {
		return fail(err)
	}
	// no sync: the next journal sync on the device orders it (see top)
	if err := writeCheckpoint(v.dev, sb, v.slot, seq); err != nil {
		return fail(err)
	}
	v.jseq = seq
	for _, blk := range blks {
		t.blocks[blk].dirty = false
	}
	t.cacheAfterCommit()
	return nil
}
