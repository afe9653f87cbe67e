package kayofs

import (
	"fmt"
	"slices"
	"sync"
)

// DirRemoval is one directory of a RemoveDirs call: Dir and the files it
// may hold (Only; nil: any file, as RemoveDir).
type DirRemoval struct {
	Dir  string
	Only []string
}

// RemoveDirs removes several directories as RemoveDir and RemoveDirOnly
// do, in one transaction when their changes fit (two syncs for all of
// them instead of two for each). Each directory is checked, and refused
// changing nothing, on its own: errs[i] is directory i's outcome, nil when
// it was removed. A failure of the transaction itself is every remaining
// directory's error.
func (v *Volume) RemoveDirs(rs []DirRemoval) (errs []error) {
	errs = make([]error, len(rs))
	fail := func(err error) []error {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return errs
	}
	all := make([][]string, len(rs))
	for i, r := range rs {
		parts, err := splitPath(r.Dir)
		if err != nil {
			errs[i] = err
		}
		all[i] = parts
	}
	t, err := v.nsLocked()
	if err != nil {
		return fail(err)
	}
	defer t.release()
	c, err := t.loadNSDirs(all, errs)
	if err != nil {
		return fail(err)
	}
	type dirKids struct {
		dino uint32
		kids []uint32
	}
	var ds []dirKids
	var locks []uint32
	for i, r := range rs {
		if errs[i] != nil {
			continue
		}
		dino, kids, err := c.removable(all[i], r.Dir, r.Only)
		if err != nil {
			errs[i] = err
			continue
		}
		ds = append(ds, dirKids{dino, kids})
		locks = append(locks, kids...)
	}
	slices.Sort(locks)
	// Every file lock before any group lock (lock order): a writer of one
	// of the files may be waiting for a group.
	for _, k := range locks {
		if err := t.lock(keyFile(k), true); err != nil {
			return fail(err)
		}
		if err := t.lock(keyInode(k), true); err != nil {
			return fail(err)
		}
	}
	for _, d := range ds {
		if err := t.lock(keyInode(d.dino), true); err != nil {
			return fail(err)
		}
	}
	h := c.hdr
	for _, d := range ds {
		if err := t.freeDir(&h, d.dino, d.kids); err != nil {
			return fail(err)
		}
	}
	if err := t.commit(); err != nil {
		return fail(err)
	}
	t.nsCommitted(c, h)
	return errs
}

// removable checks that the directory at parts holds only files (and,
// with only set, only those named there) and returns its inode and its
// files', sorted.
func (c *nsCache) removable(parts []string, dir string, only []string) (uint32, []uint32, error) {
	dino, de, err := c.lookup(parts)
	if err != nil {
		return 0, nil, err
	}
	if de.typ != typeDir {
		return 0, nil, fmt.Errorf("%w: %s", ErrNotDir, dir)
	}
	var kids []uint32
	for _, k := range c.children[dino] {
		if c.ents[k].typ == typeDir {
			return 0, nil, fmt.Errorf("%w: %s holds directory %s", ErrNotEmpty, dir, c.ents[k].name)
		}
		if only != nil && !slices.Contains(only, c.ents[k].name) {
			return 0, nil, fmt.Errorf("%w: %s holds %s", ErrNotEmpty, dir, c.ents[k].name)
		}
		kids = append(kids, k)
	}
	slices.Sort(kids)
	return dino, kids, nil
}

// freeDir frees directory dino and its files kids (their locks held),
// updating the namespace header h.
func (t *txn) freeDir(h *nsHeader, dino uint32, kids []uint32) error {
	sb := t.v.sbl()
	for _, k := range kids {
		in, err := t.inode(k)
		if err != nil {
			return err
		}
		var runs []run
		for _, x := range in.ext {
			runs = append(runs, run{x.pblk, uint64(x.n)})
		}
		// A small file frees in one round of shrink, inside this
		// transaction if its blocks fit; else it starts on an empty one.
		small := in.depth == 0 && len(in.ext) < nodeCap(sb.bs())
		if t.ndirty() > 0 && (!small || t.room() < sb.metaBlocksFor(runs)+4+treeSlack) {
			if err := t.commitDropAGs(); err != nil {
				return err
			}
		}
		if err := t.shrink(k, 0); err != nil {
			return err
		}
		if err := t.freeEntry(k); err != nil {
			return err
		}
		// header with every transaction: counts match the table on disk
		countFile(sb, h, -1)
		h.gen++
		t.putNSHeader(*h)
	}
	if t.room() < 4 {
		if err := t.commitDropAGs(); err != nil {
			return err
		}
	}
	if err := t.freeEntry(dino); err != nil {
		return err
	}
	h.dirs--
	h.gen++
	t.putNSHeader(*h)
	return nil
}

// Group commit. Mounts of one process that share a view (Views) on one
// kernel's locks (OFDLocks: the embedded SAN, which never fences) are one
// machine's mounts of one volume: a removal one of them is asked for
// while another's runs can go in the next one's transaction, through
// whichever mount runs it, with the same effect on the volume. The
// provider's embedded agents remove several VMs' directories at once
// during a destroy; together they take two syncs, not two each.

type removalGroup struct {
	mu      sync.Mutex
	pending []*groupedRemoval
	lead    sync.Mutex // held by the mount running a batch
}

type groupedRemoval struct {
	v   *Volume
	r   DirRemoval
	ran bool
	err error
}

// grouped reports whether v's removals may run in a group (above).
func (v *Volume) grouped() bool {
	_, ofd := v.lk.cl.(*OFDLocks)
	return ofd && v.views != nil
}

// removeDirGrouped queues r and either finds it run by a mount that ran
// a batch meanwhile, or runs every queued removal itself.
func (v *Volume) removeDirGrouped(r DirRemoval) error {
	g := &v.nsv.removals
	me := &groupedRemoval{v: v, r: r}
	g.mu.Lock()
	g.pending = append(g.pending, me)
	g.mu.Unlock()
	g.lead.Lock()
	defer g.lead.Unlock()
	if me.ran {
		return me.err
	}
	g.mu.Lock()
	batch := g.pending
	g.pending = nil
	g.mu.Unlock()
	var rs []DirRemoval
	var run []*groupedRemoval
	runner := v
	for _, b := range batch {
		if err := b.v.live(); err != nil {
			b.ran, b.err = true, err
			continue
		}
		if runner.live() != nil {
			runner = b.v
		}
		rs = append(rs, b.r)
		run = append(run, b)
	}
	if len(run) == 0 {
		return me.err
	}
	errs := runner.RemoveDirs(rs)
	for i, b := range run {
		b.ran, b.err = true, errs[i]
	}
	return me.err
}
