package kayofs

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestFreeInoPrefersOwnRuns: a mount takes inode numbers from the runs of
// its own slot's lock domain, so two nodes creating files do not share
// file and inode locks (LockDomain); when its runs are full it takes the
// lowest free number.
func TestFreeInoPrefersOwnRuns(t *testing.T) {
	c := newNSCache()
	c.hdr.hw = rootIno + 1
	c.ents[rootIno] = dirent{typ: typeDir}
	for _, tc := range []struct {
		slot int
		want uint32
	}{{0, 2}, {1, inoChunk}, {3, 3 * inoChunk}, {MaxSlots + 1, inoChunk}} {
		got, ok := c.freeIno(100000, tc.slot, nil)
		if !ok || got != tc.want {
			t.Errorf("slot %d: free inode %d (%v), want %d", tc.slot, got, ok, tc.want)
		}
		if LockDomain(keyInode(got)) != LockDomain(keyFile(got)) || LockDomain(keyInode(got)) != keyDomainBase+int64(tc.slot%MaxSlots) {
			t.Errorf("slot %d: inode %d's keys map onto domains %#x/%#x, want the slot's", tc.slot, got, LockDomain(keyInode(got)), LockDomain(keyFile(got)))
		}
	}
	// slot 1's first run taken: its next run is a round of runs further
	for ino := uint32(inoChunk); ino < 2*inoChunk; ino++ {
		c.ents[ino] = dirent{typ: typeFile}
	}
	c.hdr.hw = 2 * inoChunk
	if got, _ := c.freeIno(100000, 1, nil); got != (MaxSlots+1)*inoChunk {
		t.Errorf("slot 1 with its first run full: inode %d, want %d", got, (MaxSlots+1)*inoChunk)
	}
	// a small inode table: the lowest free number
	if got, _ := c.freeIno(inoChunk+4, 1, map[uint32]bool{2: true}); got != 3 {
		t.Errorf("slot 1, table of %d inodes: inode %d, want 3", inoChunk+4, got)
	}
	if LockDomain(keySlotTable) != LockDomain(keyNS) || LockDomain(keyAG(3)) != keyAG(3) {
		t.Errorf("slot table and namespace share a domain, groups keep their own")
	}
}

// TestFormatVersions: new volumes are version 5 (locked by domain, on-disk
// leases too, directory domains); version-4, version-3 and version-2 volumes can still be made for
// clusters with older binaries (whose on-disk leases, or all locks, take
// it as one); other versions are refused.
func TestFormatVersions(t *testing.T) {
	for _, tc := range []struct {
		ver, want int
		domains   bool
		leases    bool
	}{{0, FormatVersion, true, true}, {5, 5, true, true}, {4, 4, true, true}, {3, 3, true, false}, {2, 2, false, false}, {1, 0, false, false}, {6, 0, false, false}} {
		dev, err := CreateImage(filepath.Join(t.TempDir(), "lun.img"), 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		sb, err := Format(dev, FormatOptions{Slots: 2, Version: tc.ver})
		if tc.want == 0 {
			if !errors.Is(err, ErrInvalid) || !strings.Contains(fmt.Sprint(err), "format version") {
				t.Errorf("format version %d: %v, want ErrInvalid naming the version", tc.ver, err)
			}
			dev.Close()
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if int(sb.Version) != tc.want || sb.LockDomains() != tc.domains || sb.LeaseDomains() != tc.leases {
			t.Errorf("format version %d: volume version %d, lock domains %v, lease domains %v; want %d, %v, %v",
				tc.ver, sb.Version, sb.LockDomains(), sb.LeaseDomains(), tc.want, tc.domains, tc.leases)
		}
		v, err := Mount(dev, "A", MountOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Mkdir("d"); err != nil {
			t.Fatal(err)
		}
		if err := v.Unmount(); err != nil {
			t.Fatal(err)
		}
		if probs, err := Check(dev); err != nil || len(probs) > 0 {
			t.Errorf("version %d: check: %v %v", tc.want, probs, err)
		}
		dev.Close()
	}
}
