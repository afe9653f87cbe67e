package kayofs

import (
	"fmt"
	"strings"
)

// NewFile is one file of a CreateFiles batch.
type NewFile struct {
	Name     string // inside the new directory: one path element
	Allocate int64  // size to reserve first, as unwritten extents (reads as zeros)
	Off      int64  // where Data goes
	Data     []byte
}

// CreateFiles creates the directory dir (its parent must exist) holding
// files, and writes their data. A VM's directory, dynamic VHD and
// configuration take one transaction (two syncs) instead of one per
// change; what does not fit in one (large allocations, many files) commits
// in as many as needed, as the separate calls would. It refuses, changing
// nothing, when dir exists (ErrExist). The files come back open, in order.
func (v *Volume) CreateFiles(dir string, files []NewFile) ([]*File, error) {
	parts, err := splitPath(dir)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, f := range files {
		if err := validName(f.Name); err != nil {
			return nil, err
		}
		if seen[f.Name] {
			return nil, fmt.Errorf("%w: %s listed twice", ErrInvalid, f.Name)
		}
		seen[f.Name] = true
		if f.Allocate < 0 || f.Allocate > 1<<50 || f.Off < 0 || uint64(f.Off)+uint64(len(f.Data)) > 1<<50 {
			return nil, fmt.Errorf("%w: %s: size %d, data at %d", ErrInvalid, f.Name, f.Allocate, f.Off)
		}
	}
	if err := v.live(); err != nil {
		return nil, err
	}
	// The namespace part (header, an entry and an inode per file) must fit
	// one transaction beside room for allocation: else change by change.
	if 2*len(files)+3 > int(v.sbl().JournalBlocks)-4-4*treeSlack {
		return v.createFilesStepwise(dir, files)
	}
	t, c, err := v.nsTxnNew(parts[:len(parts)-1], len(files))
	if err != nil {
		return nil, err
	}
	defer t.release()
	pino, pe, err := c.lookup(parts[:len(parts)-1])
	if err != nil {
		return nil, err
	}
	if pe.typ != typeDir {
		return nil, fmt.Errorf("%w: %s", ErrNotDir, strings.Join(parts[:len(parts)-1], "/"))
	}
	name := parts[len(parts)-1]
	if _, ok := c.children[pino][name]; ok {
		return nil, fmt.Errorf("%w: %s", ErrExist, dir)
	}
	h := c.hdr
	taken := map[uint32]bool{}
	newEntry := func(typ uint8, parent uint32, name string) (uint32, uint64, error) {
		ino, ok := c.freeIno(v.sbl().InodeCount, v.prefClass(typ, parent), taken)
		if !ok {
			return 0, 0, ErrNoInodes
		}
		taken[ino] = true
		if err := t.lock(keyInode(ino), true); err != nil {
			return 0, 0, err
		}
		gen, err := t.addEntry(&h, ino, typ, parent, name)
		return ino, gen, err
	}
	dino, _, err := newEntry(typeDir, pino, name)
	if err != nil {
		return nil, err
	}
	out := make([]*File, len(files))
	for i, f := range files {
		ino, gen, err := newEntry(typeFile, dino, f.Name)
		if err != nil {
			return nil, err
		}
		out[i] = &File{v: v, ino: ino, gen: gen, path: dir + "/" + f.Name}
	}
	h.gen++
	t.putNSHeader(h)
	// Data. Nobody can reach the new files before the namespace commits, so
	// their inode locks (held) are all the writes need. A commit on the way
	// (room running out) carries the namespace change first, whole.
	for i, f := range files {
		ino := out[i].ino
		if f.Allocate > 0 {
			if t.room() < 3*treeSlack+4 {
				if err := t.commitDropAGs(); err != nil {
					return nil, err
				}
			}
			if err := t.mapHoles(ino, 0, v.sbl().blocksFor(uint64(f.Allocate))); err != nil {
				return nil, err
			}
			in, err := t.inode(ino)
			if err != nil {
				return nil, err
			}
			if uint64(f.Allocate) > in.size {
				in.size = uint64(f.Allocate)
				if err := t.putInode(ino, in); err != nil {
					return nil, err
				}
			}
		}
		if len(f.Data) > 0 {
			if t.room() < 3*treeSlack+4 {
				if err := t.commitDropAGs(); err != nil {
					return nil, err
				}
			}
			if _, err := t.writeAll(ino, f.Data, uint64(f.Off), false); err != nil {
				return nil, err
			}
		}
	}
	if err := t.commit(); err != nil {
		return nil, err
	}
	t.nsCommitted(c, h)
	return out, nil
}

// commitDropAGs commits and lets the group locks go, so the next
// allocation starts again in lock order.
func (t *txn) commitDropAGs() error {
	if err := t.commit(); err != nil {
		return err
	}
	t.dropAGs()
	return nil
}

// createFilesStepwise is CreateFiles change by change.
func (v *Volume) createFilesStepwise(dir string, files []NewFile) ([]*File, error) {
	if err := v.Mkdir(dir); err != nil {
		return nil, err
	}
	out := make([]*File, len(files))
	for i, nf := range files {
		f, err := v.Create(dir + "/" + nf.Name)
		if err != nil {
			return nil, err
		}
		if nf.Allocate > 0 {
			if err := f.Allocate(nf.Allocate); err != nil {
				return nil, err
			}
		}
		if len(nf.Data) > 0 {
			if _, err := f.WriteAt(nf.Data, nf.Off); err != nil {
				return nil, err
			}
		}
		out[i] = f
	}
	return out, nil
}

// RemoveDir removes the directory dir and the files in it, freeing their
// blocks: one transaction for a VM's few small files instead of one per
// file (large or fragmented files free their blocks in transactions of
// their own first, as Remove does). A subdirectory makes it refuse, changing
// nothing (ErrNotEmpty).
func (v *Volume) RemoveDir(dir string) error { return v.removeDir(dir, nil) }

// RemoveDirOnly is RemoveDir for a directory expected to hold only files
// named in names (some may be missing): any other entry makes it refuse,
// changing nothing, with ErrNotEmpty naming the entry. The check and the
// removal are one change, so nothing written in between is lost.
func (v *Volume) RemoveDirOnly(dir string, names []string) error {
	if names == nil {
		names = []string{}
	}
	if v.grouped() {
		return v.removeDirGrouped(DirRemoval{Dir: dir, Only: names})
	}
	return v.removeDir(dir, names)
}

// removeDir: only == nil allows any file.
func (v *Volume) removeDir(dir string, only []string) error {
	return v.RemoveDirs([]DirRemoval{{Dir: dir, Only: only}})[0]
}
