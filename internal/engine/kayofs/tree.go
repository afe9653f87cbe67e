package kayofs

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// Extent trees. A file whose extents fit in its inode (maxExtents: 167 at
// 4 KiB blocks) keeps them inline (depth 0). Past that the inode's inline
// records become the index of a tree of extent blocks allocated from the
// groups' data areas:
//
//	inode (depth d): index records (first logical block, child block, count)
//	level d-1 .. 1:  index blocks of the same records
//	level 0:         leaf blocks of extent records
//
// A tree block is [48-byte header, type tExtNode][48] level [52:56] count
// [56:60] owning inode [60:64] 0 [64:] records of 24 bytes (nodeCap: 168
// at 4 KiB). Each record of a parent carries its child's first key and
// record count, so any change below rewrites the path to the inode and the
// inode's write generation names the whole tree (mounts cache decoded
// trees by it). Depth is at most maxDepth (3: 790 million extents at 4 KiB).
//
// Updates are incremental: the new extent list is cut at the old leaves'
// boundaries; unchanged leaves are not touched, changed ones rewritten in
// place, overfull ones split (new blocks allocated near the old), emptied
// ones freed, and small changed neighbours merged. The same rule applies
// level by level upwards. All of it is in the transaction that changes
// the extents, journaled like every other metadata block; freed tree
// blocks go back to their group's bitmap in the same transaction.
const tExtNode uint32 = 0x4b59000b

const (
	maxDepth  = 3
	nodeHdr   = 64
	treeSlack = 8 // blocks a transaction keeps free for tree updates
)

func nodeCap(bs int) int { return (bs - nodeHdr) / extSize }

type tnode struct {
	blk   uint64
	items []extent // extents (level 0) or index records
	dirty bool
}

func (n tnode) key() uint64 { return n.items[0].lblk }

type treeCacheEnt struct {
	gen   uint64 // inode generation (the file's identity)
	bgen  uint64 // inode block write generation (the tree's version)
	ext   []extent
	tree  [][]tnode
	depth uint8
}

func encodeNode(b []byte, level int, ino uint32, items []extent) {
	clear(b[blkHdrSize:])
	le := binary.LittleEndian
	b[48] = byte(level)
	le.PutUint32(b[52:], uint32(len(items)))
	le.PutUint32(b[56:], ino)
	encodeRecords(b[nodeHdr:], items)
}

// decodeNode validates a tree block body against what its parent says.
func decodeNode(b []byte, level int, ino uint32, parent extent) ([]extent, error) {
	le := binary.LittleEndian
	n := int(le.Uint32(b[52:]))
	// A tree block holds at least one record (its parent's key is its first).
	if int(b[48]) != level || le.Uint32(b[56:]) != ino || n != int(parent.n) || n < 1 || n > nodeCap(len(b)) || le.Uint32(b[60:]) != 0 {
		return nil, fmt.Errorf("tree block: level %d, inode %d, %d records; parent expects level %d, inode %d, %d records",
			b[48], le.Uint32(b[56:]), n, level, ino, parent.n)
	}
	items, err := decodeRecords(b[nodeHdr:], n, level > 0, len(b))
	if err != nil {
		return nil, err
	}
	if items[0].lblk != parent.lblk {
		return nil, fmt.Errorf("tree block: first key %d, parent says %d", items[0].lblk, parent.lblk)
	}
	return items, nil
}

// walkTree reads an inode's tree top-down with read(blk) → (block, fresh,
// error), returning the levels and the extents in order.
func walkTree(in *inode, ino uint32, read func(uint64) ([]byte, error)) ([][]tnode, []extent, error) {
	tree := make([][]tnode, in.depth)
	parents := in.root
	for l := int(in.depth) - 1; l >= 0; l-- {
		var next []extent
		for _, p := range parents {
			b, err := read(p.pblk)
			if err != nil {
				return nil, nil, err
			}
			items, err := decodeNode(b, l, ino, p)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: inode %d: block %d: %v", ErrCorrupt, ino, p.pblk, err)
			}
			tree[l] = append(tree[l], tnode{blk: p.pblk, items: items})
			next = append(next, items...)
		}
		parents = next
	}
	for i := 1; i < len(parents); i++ {
		if parents[i].lblk < parents[i-1].end() {
			return nil, nil, fmt.Errorf("%w: inode %d: extents overlap or are out of order across tree blocks", ErrCorrupt, ino)
		}
	}
	return tree, parents, nil
}

// loadTree fills in.ext and in.tree from the blocks below in.root.
func (t *txn) loadTree(ino uint32, in *inode, bgen uint64, cacheable bool) error {
	v := t.v
	if cacheable {
		v.treeMu.Lock()
		c, ok := v.trees[ino]
		v.treeMu.Unlock()
		if ok && c.gen == in.gen && c.bgen == bgen && c.depth == in.depth {
			in.ext = slices.Clone(c.ext)
			in.tree = cloneTree(c.tree)
			return nil
		}
	}
	sb := v.sbl()
	read := func(blk uint64) ([]byte, error) {
		if _, _, ok := sb.agOf(blk); !ok {
			if err := v.refreshSB(); err != nil {
				return nil, err
			}
			sb = v.sbl()
			if _, _, ok := sb.agOf(blk); !ok {
				return nil, fmt.Errorf("%w: inode %d: tree block %d outside the data area", ErrCorrupt, ino, blk)
			}
		}
		b, fresh, err := t.get(blk, tExtNode)
		if err == nil && fresh {
			err = fmt.Errorf("%w: inode %d: tree block %d never written", ErrCorrupt, ino, blk)
		}
		return b, err
	}
	tree, ext, err := walkTree(in, ino, read)
	if err != nil {
		return err
	}
	in.ext, in.tree = ext, tree
	if cacheable {
		v.treeMu.Lock()
		if v.trees == nil {
			v.trees = map[uint32]treeCacheEnt{}
		}
		v.trees[ino] = treeCacheEnt{gen: in.gen, bgen: bgen, ext: slices.Clone(ext), tree: cloneTree(tree), depth: in.depth}
		v.treeMu.Unlock()
	}
	return nil
}

// cloneTree copies the levels; node items are never modified in place
// (updateLevel builds new slices), so they are shared.
func cloneTree(tr [][]tnode) [][]tnode {
	out := make([][]tnode, len(tr))
	for l, lv := range tr {
		out[l] = make([]tnode, len(lv))
		for i, n := range lv {
			out[l][i] = tnode{blk: n.blk, items: n.items}
		}
	}
	return out
}

// cacheAfterCommit records the trees this transaction wrote, under the
// inode blocks' new write generations.
func (t *txn) cacheAfterCommit() {
	if len(t.trees) == 0 {
		return
	}
	v := t.v
	v.treeMu.Lock()
	defer v.treeMu.Unlock()
	if v.trees == nil {
		v.trees = map[uint32]treeCacheEnt{}
	}
	for ino, c := range t.trees {
		if b := t.blocks[v.sbl().inodeBlock(ino)]; b != nil && c.depth > 0 {
			c.bgen = blockGen(b.buf)
			v.trees[ino] = c
		} else {
			delete(v.trees, ino)
		}
	}
	t.trees = nil
}

// storeTree lays out in.ext (normalized) as inline extents or a tree,
// rewriting only what changed; it sets in.depth and in.root.
func (t *txn) storeTree(ino uint32, in *inode) error {
	bs := t.v.sbl().bs()
	old := in.tree
	items := in.ext
	var tree [][]tnode
	for len(items) > maxExtents(bs) {
		if len(tree) == maxDepth {
			return fmt.Errorf("%w: inode %d would need an extent tree deeper than %d", ErrFragmented, ino, maxDepth)
		}
		var prev []tnode
		if l := len(tree); l < len(old) {
			prev = old[l]
		}
		nodes, err := t.updateLevel(ino, len(tree), prev, items)
		if err != nil {
			return err
		}
		tree = append(tree, nodes)
		items = make([]extent, len(nodes))
		for i, n := range nodes {
			items[i] = extent{lblk: n.key(), pblk: n.blk, n: uint32(len(n.items))}
		}
	}
	// free levels the new shape no longer has
	var freed []run
	for l := len(tree); l < len(old); l++ {
		for _, n := range old[l] {
			freed = append(freed, run{n.blk, 1})
		}
	}
	if len(freed) > 0 {
		if err := t.freeTree(freed); err != nil {
			return err
		}
	}
	in.tree = tree
	in.depth = uint8(len(tree))
	in.root = nil
	if len(tree) > 0 {
		in.root = items
	}
	if t.trees == nil {
		t.trees = map[uint32]treeCacheEnt{}
	}
	t.trees[ino] = treeCacheEnt{gen: in.gen, ext: slices.Clone(in.ext), tree: cloneTree(tree), depth: in.depth}
	return nil
}

// updateLevel maps items onto the old nodes of one level (see above).
func (t *txn) updateLevel(ino uint32, level int, old []tnode, items []extent) ([]tnode, error) {
	bs := t.v.sbl().bs()
	capN := nodeCap(bs)
	fill := capN * 3 / 4
	var out []tnode
	var freed []run
	if len(old) == 0 {
		old = []tnode{{blk: 0}}
	}
	i := 0
	for j, o := range old {
		hi := len(items)
		if j+1 < len(old) {
			k := old[j+1].key()
			hi = i + keysBelow(items[i:], k)
		}
		part := items[i:hi]
		i = hi
		switch {
		case len(part) == 0:
			if o.blk != 0 {
				freed = append(freed, run{o.blk, 1})
			}
		case o.blk != 0 && slices.Equal(part, o.items):
			out = append(out, tnode{blk: o.blk, items: o.items})
		case len(part) <= capN:
			out = append(out, tnode{blk: o.blk, items: slices.Clone(part), dirty: true})
		default:
			for c := 0; c < len(part); c += fill {
				blk := uint64(0)
				if c == 0 {
					blk = o.blk
				}
				out = append(out, tnode{blk: blk, items: slices.Clone(part[c:min(c+fill, len(part))]), dirty: true})
			}
		}
	}
	// merge small changed neighbours so sparse leaves do not pile up
	merged := out[:0]
	for _, n := range out {
		if l := len(merged); l > 0 && (n.dirty || merged[l-1].dirty) && len(merged[l-1].items)+len(n.items) <= capN/2 {
			p := &merged[l-1]
			if p.blk == 0 {
				p.blk, n.blk = n.blk, 0
			}
			p.items = append(slices.Clone(p.items), n.items...)
			p.dirty = true
			if n.blk != 0 {
				freed = append(freed, run{n.blk, 1})
			}
			continue
		}
		merged = append(merged, n)
	}
	out = merged
	// write: allocate blocks for new nodes near their neighbours
	for k := range out {
		n := &out[k]
		if !n.dirty {
			continue
		}
		if n.blk == 0 {
			goal := uint64(0)
			if k > 0 {
				goal = out[k-1].blk + 1
			} else if len(items) > 0 && level == 0 {
				goal = items[0].pblk
			}
			blk, err := t.allocTreeBlock(goal)
			if err != nil {
				return nil, err
			}
			n.blk = blk
		}
		b, fresh, err := t.get(n.blk, tExtNode)
		if err != nil {
			if !errorsIs(err, ErrCorrupt) {
				return nil, err
			}
			// a freshly allocated block may hold anything (old file data)
			b, fresh = make([]byte, bs), true
			t.blocks[n.blk] = &tblk{buf: b, typ: tExtNode}
		}
		_ = fresh
		encodeNode(b, level, ino, n.items)
		t.dirty(n.blk)
	}
	if len(freed) > 0 {
		if err := t.freeTree(freed); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// keysBelow returns how many leading items have keys below k.
func keysBelow(items []extent, k uint64) int {
	lo, hi := 0, len(items)
	for lo < hi {
		m := (lo + hi) / 2
		if items[m].lblk < k {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

func (t *txn) allocTreeBlock(goal uint64) (uint64, error) {
	t.inTree = true
	defer func() { t.inTree = false }()
	runs, err := t.allocate(1, goal, 1)
	if err != nil {
		return 0, err
	}
	return runs[0].start, nil
}

// freeTree returns tree blocks to their groups. A group the transaction
// does not hold is taken only without waiting when other groups are held
// (waiting could deadlock: lock order is ascending or try-lock); a block
// whose group is busy is freed right after the commit instead, in a
// transaction of its own (a crash in between leaks it: Check reports it,
// nothing else is affected).
func (t *txn) freeTree(runs []run) error {
	for _, r := range runs {
		delete(t.blocks, r.start) // never write a freed tree block
	}
	if !t.holdsAG() {
		return t.free(runs)
	}
	sb := t.v.sbl()
	var now []run
	for _, r := range runs {
		k, _, ok := sb.agOf(r.start)
		if !ok {
			return fmt.Errorf("%w: tree block %d outside the data area", ErrCorrupt, r.start)
		}
		if t.holds(keyAG(k)) {
			now = append(now, r)
			continue
		}
		got, err := t.tryLock(keyAG(k))
		if err != nil {
			return err
		}
		if got {
			now = append(now, r)
		} else {
			t.deferred = append(t.deferred, r)
		}
	}
	if len(now) == 0 {
		return nil
	}
	return t.free(now)
}

// freeDeferred frees what freeTree deferred, after a commit: with every
// group lock dropped, groups are taken in ascending order.
func (t *txn) freeDeferred() error {
	runs := t.deferred
	t.deferred = nil
	t.dropAGs()
	if err := t.free(runs); err != nil {
		return err
	}
	if err := t.commit(); err != nil {
		return err
	}
	t.dropAGs()
	return nil
}
