package kayofs

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"sort"
)

// Allocation groups. The data area is split into AGCount groups; group k is
//
//	[header][bitmap × AGBitmapBlocks][data × AGDataBlocks (last may be short)]
//
// The header holds the group's free count and the free count of each bitmap
// block, so allocation never scans full bitmaps and Stats reads one block per
// group. Bitmap bit i of block j covers data block j*bitsPerBitmap+i. A fresh
// (never written) header or bitmap reads as "all free": formatting writes
// none of them. Each node starts allocating in its own group (slot-based)
// and takes group locks with try-lock, moving on when a group is busy, so
// nodes allocate without contending.
const (
	bmpHdrSize  = 64
	agHdrCounts = 64
)

func agMaxBitmaps(bs int) int { return (bs - agHdrCounts) / 4 }

type run struct{ start, n uint64 }

// agHeader counts used blocks (of the group and of each bitmap block), not
// free ones: a group's header then stays valid when Grow lengthens the last
// group, so growing rewrites the superblock and nothing else.
type agHeader struct {
	used    uint64
	bmpUsed []uint32
}

// bmpCap is how many data blocks bitmap block i of group k covers.
func (sb *Superblock) bmpCap(k uint32, i int) uint64 {
	dl := sb.agDataLen(k)
	lo := uint64(i) * sb.bitsPerBitmap()
	if lo >= dl {
		return 0
	}
	return min(sb.bitsPerBitmap(), dl-lo)
}

// freshAG is the state of a never-written group.
func (sb *Superblock) freshAG(k uint32) agHeader {
	return agHeader{bmpUsed: make([]uint32, sb.AGBitmapBlocks)}
}

// decodeAGHeader validates a header body against the layout.
func decodeAGHeader(sb *Superblock, k uint32, b []byte) (agHeader, error) {
	le := binary.LittleEndian
	h := agHeader{used: le.Uint64(b[48:]), bmpUsed: make([]uint32, sb.AGBitmapBlocks)}
	if n := le.Uint32(b[56:]); n != sb.AGBitmapBlocks {
		return h, fmt.Errorf("%w: group %d header: %d bitmap blocks, layout has %d", ErrCorrupt, k, n, sb.AGBitmapBlocks)
	}
	var sum uint64
	for i := range h.bmpUsed {
		h.bmpUsed[i] = le.Uint32(b[agHdrCounts+4*i:])
		if c := sb.bmpCap(k, i); uint64(h.bmpUsed[i]) > c {
			return h, fmt.Errorf("%w: group %d header: bitmap %d uses %d of its %d blocks", ErrCorrupt, k, i, h.bmpUsed[i], c)
		}
		sum += uint64(h.bmpUsed[i])
	}
	if sum != h.used {
		return h, fmt.Errorf("%w: group %d header: used %d but bitmap counts sum to %d", ErrCorrupt, k, h.used, sum)
	}
	return h, nil
}

func encodeAGHeader(b []byte, h agHeader) {
	le := binary.LittleEndian
	le.PutUint64(b[48:], h.used)
	le.PutUint32(b[56:], uint32(len(h.bmpUsed)))
	for i, u := range h.bmpUsed {
		le.PutUint32(b[agHdrCounts+4*i:], u)
	}
}

func (t *txn) agHeader(k uint32) (agHeader, error) {
	sb := t.v.sbl()
	b, fresh, err := t.get(sb.agHeader(k), tAGHeader)
	if err != nil {
		return agHeader{}, err
	}
	if fresh {
		return sb.freshAG(k), nil
	}
	return decodeAGHeader(sb, k, b)
}

func (t *txn) putAGHeader(k uint32, h agHeader) {
	blk := t.v.sbl().agHeader(k)
	encodeAGHeader(t.blocks[blk].buf, h)
	t.dirty(blk)
}

func bitGet(bm []byte, i uint64) bool { return bm[i>>3]&(1<<(i&7)) != 0 }
func bitSet(bm []byte, i uint64)      { bm[i>>3] |= 1 << (i & 7) }
func bitClr(bm []byte, i uint64)      { bm[i>>3] &^= 1 << (i & 7) }

func popcount(bm []byte) uint64 {
	var n int
	for len(bm) >= 8 {
		n += bits.OnesCount64(binary.LittleEndian.Uint64(bm))
		bm = bm[8:]
	}
	for _, c := range bm {
		n += bits.OnesCount8(c)
	}
	return uint64(n)
}

// allocate reserves up to want data blocks, preferring goal (a physical
// block to continue from) and then the node's own group. It returns the
// runs obtained (possibly fewer blocks than asked when the transaction is
// full) or ErrNoSpace when nothing is free anywhere.
func (t *txn) allocate(want uint64, goal uint64, maxRuns int) ([]run, error) {
	sb := t.v.sbl()
	var runs []run
	var got uint64
	order := make([]uint32, 0, sb.AGCount)
	gk, gidx, hasGoal := sb.agOf(goal)
	if hasGoal {
		order = append(order, gk)
	}
	pref := uint32(uint64(t.v.slot) * uint64(sb.AGCount) / uint64(sb.SlotCount))
	for i := uint32(0); i < sb.AGCount; i++ {
		k := (pref + i) % sb.AGCount
		if !hasGoal || k != gk {
			order = append(order, k)
		}
	}
	var busy []uint32
	tryAG := func(k uint32, blocking bool) (bool, error) {
		key := keyAG(k)
		locked := t.holds(key)
		if !locked {
			if blocking {
				if err := t.lock(key, true); err != nil {
					return false, err
				}
			} else {
				ok, err := t.tryLock(key)
				if err != nil {
					return false, err
				}
				if !ok {
					return false, nil
				}
			}
		}
		start := uint64(0)
		if hasGoal && k == gk {
			start = gidx
		}
		n, err := t.allocFromAG(k, want-got, start, &runs, maxRuns)
		if err != nil {
			return true, err
		}
		got += n
		if n == 0 && !locked {
			hdr := t.blocks[sb.agHeader(k)]
			if hdr == nil || !hdr.dirty {
				t.forgetAG(k)
				t.drop(key)
			}
		}
		return true, nil
	}
	for _, k := range order {
		if got >= want || t.room() < 3+t.slack() || len(runs) >= maxRuns {
			break
		}
		ok, err := tryAG(k, false)
		if err != nil {
			return runs, err
		}
		if !ok {
			busy = append(busy, k)
		}
	}
	// Wait for a busy group only while holding no other group: blocking
	// with a group held could deadlock against a node doing the reverse.
	if got == 0 && !t.holdsAG() {
		for _, k := range busy {
			if _, err := tryAG(k, true); err != nil {
				return runs, err
			}
			if got > 0 {
				break
			}
		}
	}
	if got == 0 {
		return nil, ErrNoSpace
	}
	return runs, nil
}

// holdsAG reports whether the transaction holds any allocation-group lock.
func (t *txn) holdsAG() bool {
	for _, h := range t.held {
		if h.key >= keyAGBase && h.key < keyInodeBase {
			return true
		}
	}
	return false
}

// forgetAG drops cached, clean blocks of group k (its lock is going away).
func (t *txn) forgetAG(k uint32) {
	sb := t.v.sbl()
	lo, hi := sb.agHeader(k), sb.agHeader(k)+1+uint64(sb.AGBitmapBlocks)
	for blk, b := range t.blocks {
		if blk >= lo && blk < hi && !b.dirty {
			delete(t.blocks, blk)
		}
	}
}

// dropAGs releases every group lock after a commit so the next chunk of a
// long operation starts again in lock order.
func (t *txn) dropAGs() {
	for i := len(t.held) - 1; i >= 0; i-- {
		h := t.held[i]
		if h.key >= keyAGBase && h.key < keyInodeBase {
			k := uint32(h.key - keyAGBase)
			t.forgetAG(k)
			t.v.lk.unlock(h.key, h.excl)
			t.held = append(t.held[:i], t.held[i+1:]...)
		}
	}
}

// allocFromAG takes up to want blocks from group k (locked by the caller).
func (t *txn) allocFromAG(k uint32, want uint64, startIdx uint64, runs *[]run, maxRuns int) (uint64, error) {
	sb := t.v.sbl()
	h, err := t.agHeader(k)
	if err != nil || h.used >= sb.agDataLen(k) {
		return 0, err
	}
	per := sb.bitsPerBitmap()
	dl := sb.agDataLen(k)
	base := sb.agDataStart(k)
	var got uint64
	nb := uint64(sb.AGBitmapBlocks)
	first := min(startIdx/per, nb-1)
	for j := uint64(0); j < nb && got < want; j++ {
		i := (first + j) % nb
		if uint64(h.bmpUsed[i]) >= sb.bmpCap(k, int(i)) {
			continue
		}
		blk := sb.agBitmap(k, uint32(i))
		// room for this bitmap, the group header and the caller's inode
		need := 1
		if b, ok := t.blocks[blk]; ok && b.dirty {
			need = 0
		}
		if hb := t.blocks[sb.agHeader(k)]; hb == nil || !hb.dirty {
			need++
		}
		if t.room() < need+1+t.slack() {
			break
		}
		if len(*runs) >= maxRuns {
			break
		}
		b, _, err := t.get(blk, tBitmap)
		if err != nil {
			return got, err
		}
		bm := b[bmpHdrSize:]
		lo := i * per
		hi := min(lo+per, dl)
		from := lo
		if j == 0 && startIdx > lo && startIdx < hi {
			from = startIdx
		}
		changed := false
		for pass := 0; pass < 2 && got < want && len(*runs) < maxRuns; pass++ {
			x := from
			end := hi
			if pass == 1 {
				x, end = lo, from
			}
			for x < end && got < want && len(*runs) < maxRuns {
				rel := x - lo
				if bm[rel>>3] == 0xff && rel&7 == 0 {
					x += 8
					continue
				}
				if bitGet(bm, rel) {
					x++
					continue
				}
				s := x
				for x < end && got < want && !bitGet(bm, x-lo) {
					bitSet(bm, x-lo)
					x++
					got++
				}
				n := x - s
				h.bmpUsed[i] += uint32(n)
				h.used += n
				changed = true
				p := base + s
				if l := len(*runs); l > 0 && (*runs)[l-1].start+(*runs)[l-1].n == p {
					(*runs)[l-1].n += n
				} else {
					*runs = append(*runs, run{p, n})
				}
			}
		}
		if changed {
			t.dirty(blk)
		}
	}
	if got > 0 {
		t.putAGHeader(k, h)
	}
	return got, nil
}

// bitmapBlocksFor counts the distinct bitmap blocks a set of runs touches
// (plus one header per group), to size free transactions.
func (sb *Superblock) metaBlocksFor(runs []run) int {
	seen := map[uint64]bool{}
	per := sb.bitsPerBitmap()
	for _, r := range runs {
		for p := r.start; p < r.start+r.n; {
			k, idx, ok := sb.agOf(p)
			if !ok {
				p++
				continue
			}
			seen[sb.agHeader(k)] = true
			seen[sb.agBitmap(k, uint32(idx/per))] = true
			next := p + (per - idx%per)
			p = next
		}
	}
	return len(seen)
}

// free returns runs to their groups; groups are locked in ascending order.
func (t *txn) free(runs []run) error {
	sb := t.v.sbl()
	type piece struct {
		k   uint32
		idx uint64
		n   uint64
	}
	var ps []piece
	per := sb.bitsPerBitmap()
	for _, r := range runs {
		for p := r.start; p < r.start+r.n; {
			k, idx, ok := sb.agOf(p)
			if !ok && p >= sb.TotalBlocks {
				// allocated by a node that saw the volume grown
				if err := t.v.refreshSB(); err != nil {
					return err
				}
				sb = t.v.sbl()
				k, idx, ok = sb.agOf(p)
			}
			if !ok {
				return fmt.Errorf("%w: freeing block %d outside the data area", ErrCorrupt, p)
			}
			n := min(r.start+r.n-p, per-idx%per, sb.agDataLen(k)-idx)
			ps = append(ps, piece{k, idx, n})
			p += n
		}
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].k < ps[j].k || ps[i].k == ps[j].k && ps[i].idx < ps[j].idx })
	hdrs := map[uint32]agHeader{}
	for _, pc := range ps {
		h, ok := hdrs[pc.k]
		if !ok {
			if !t.holds(keyAG(pc.k)) {
				if err := t.lock(keyAG(pc.k), true); err != nil {
					return err
				}
			}
			var err error
			if h, err = t.agHeader(pc.k); err != nil {
				return err
			}
		}
		i := pc.idx / per
		blk := sb.agBitmap(pc.k, uint32(i))
		b, _, err := t.get(blk, tBitmap)
		if err != nil {
			return err
		}
		bm := b[bmpHdrSize:]
		for x := pc.idx; x < pc.idx+pc.n; x++ {
			if !bitGet(bm, x-i*per) {
				return fmt.Errorf("%w: freeing free block %d (group %d)", ErrCorrupt, sb.agDataStart(pc.k)+x, pc.k)
			}
			bitClr(bm, x-i*per)
		}
		h.bmpUsed[i] -= uint32(pc.n)
		h.used -= pc.n
		hdrs[pc.k] = h
		t.dirty(blk)
	}
	for k, h := range hdrs {
		t.putAGHeader(k, h)
	}
	return nil
}

// VolumeStats is the space accounting of a volume.
type VolumeStats struct {
	BlockSize  int64
	TotalBytes int64 // device bytes covered by the volume
	DataBytes  int64 // bytes usable by files
	UsedBytes  int64 // TotalBytes - FreeBytes (includes metadata)
	FreeBytes  int64
	Groups     int
}

// Stats sums the free counts of every allocation group.
func (v *Volume) Stats() (VolumeStats, error) {
	if err := v.live(); err != nil {
		return VolumeStats{}, err
	}
	if err := v.refreshSB(); err != nil {
		return VolumeStats{}, err
	}
	sb := v.sbl()
	var free uint64
	for k := uint32(0); k < sb.AGCount; k++ {
		t := v.newTxn()
		if err := t.lock(keyAG(k), false); err != nil {
			return VolumeStats{}, err
		}
		h, err := t.agHeader(k)
		t.release()
		if err != nil {
			return VolumeStats{}, err
		}
		free += sb.agDataLen(k) - min(h.used, sb.agDataLen(k))
	}
	bs := int64(sb.BlockSize)
	st := VolumeStats{
		BlockSize:  bs,
		TotalBytes: int64(sb.TotalBlocks) * bs,
		DataBytes:  int64(sb.DataBlocks()) * bs,
		FreeBytes:  int64(free) * bs,
		Groups:     int(sb.AGCount),
	}
	st.UsedBytes = st.TotalBytes - st.FreeBytes
	return st, nil
}

// Usage reads the space accounting of a volume without mounting it (one
// block per allocation group; a crashed node's unreplayed transaction is
// not counted until a mount replays it).
func Usage(dev Device) (VolumeStats, error) {
	sb, err := ReadSuperblock(dev)
	if err != nil {
		return VolumeStats{}, err
	}
	var free uint64
	for k := uint32(0); k < sb.AGCount; k++ {
		b, err := readBlock(dev, sb.bs(), sb.agHeader(k))
		if err != nil {
			return VolumeStats{}, err
		}
		dl := sb.agDataLen(k)
		switch st, why := checkBlock(b, tAGHeader, sb.UUID, sb.agHeader(k)); st {
		case blockFresh:
			free += dl
		case blockCorrupt:
			return VolumeStats{}, fmt.Errorf("%w: group %d header: %s", ErrCorrupt, k, why)
		default:
			h, err := decodeAGHeader(sb, k, b)
			if err != nil {
				return VolumeStats{}, err
			}
			free += dl - min(h.used, dl)
		}
	}
	bs := int64(sb.BlockSize)
	st := VolumeStats{BlockSize: bs, TotalBytes: int64(sb.TotalBlocks) * bs, DataBytes: int64(sb.DataBlocks()) * bs,
		FreeBytes: int64(free) * bs, Groups: int(sb.AGCount)}
	st.UsedBytes = st.TotalBytes - st.FreeBytes
	return st, nil
}
