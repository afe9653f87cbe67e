package kayofs

import (
	"errors"
	"fmt"
	"sync"
	"testing"
)

func mustMountViews(t testing.TB, dev Device, node string, views *Views) *Volume {
	t.Helper()
	v, err := Mount(dev, node, MountOptions{Views: views})
	if err != nil {
		t.Fatalf("mount %s: %v", node, err)
	}
	t.Cleanup(func() { _ = v.Unmount() })
	return v
}

// unmountAndCheck unmounts vs and runs Check on dev.
func unmountAndCheck(t *testing.T, dev Device, vs ...*Volume) {
	t.Helper()
	for _, v := range vs {
		if err := v.Unmount(); err != nil {
			t.Fatal(err)
		}
	}
	mustCheck(t, dev)
}

func vmFiles() []NewFile {
	return []NewFile{{Name: "VM.vhd", Data: []byte("vhd")}, {Name: "VM.xml", Data: []byte("xml")}}
}

// TestSharedViewSparesReloads: 16 mounts of one process, as the provider's
// embedded agents, each creating and removing VM directories in turn. With
// a shared view a CreateFiles or RemoveDir after another mount's change
// reads its classes, not the directory table again; with a view per mount
// (the same calls, no Views) it reads the whole table, which is what the
// test measures against.
func TestSharedViewSparesReloads(t *testing.T) {
	for _, shared := range []bool{true, false} {
		t.Run(fmt.Sprintf("shared=%v", shared), func(t *testing.T) {
			fd := newImage(t, 64<<30)
			dev := &readBytesDevice{FileDevice: fd}
			sb := mustFormat(t, dev, FormatOptions{Slots: 16})
			var views *Views
			if shared {
				views = NewViews()
			}
			var vs []*Volume
			for i := range 16 {
				vs = append(vs, mustMountViews(t, dev, fmt.Sprintf("node%d", i), views))
			}
			for i := range 240 {
				if _, err := vs[i%16].CreateFiles(fmt.Sprintf("VM%03d", i), vmFiles()); err != nil {
					t.Fatal(err)
				}
			}
			table := int64(sb.direntBlocksBelow(vs[15].nsv.c.hdr.hw)) * int64(sb.BlockSize)
			r0 := dev.read.Load()
			if _, err := vs[3].CreateFiles("VM240", vmFiles()); err != nil { // node 3 last changed it 228 VMs ago
				t.Fatal(err)
			}
			created := dev.read.Load() - r0
			r0 = dev.read.Load()
			if err := vs[7].RemoveDir("VM100"); err != nil {
				t.Fatal(err)
			}
			removed := dev.read.Load() - r0
			t.Logf("directory table %d bytes; CreateFiles read %d, RemoveDir read %d", table, created, removed)
			for _, c := range []struct {
				op   string
				read int64
			}{{"CreateFiles", created}, {"RemoveDir", removed}} {
				if shared && c.read >= table/2 {
					t.Errorf("%s with a shared view read %d bytes of a %d-byte directory table: it reloaded the table", c.op, c.read, table)
				}
				if !shared && c.read < table/2 {
					t.Errorf("%s with a view per mount read %d bytes of a %d-byte table: the reload this test compares with did not happen", c.op, c.read, table)
				}
			}
			if _, err := vs[0].Stat("VM240/VM.xml"); err != nil {
				t.Fatal(err)
			}
			if _, err := vs[0].Stat("VM100"); !errors.Is(err, ErrNotExist) {
				t.Fatalf("VM100 after its removal by another mount: %v, want ErrNotExist", err)
			}
		})
	}
	// (the mounts unmount in Cleanup; Check runs in TestSharedViewSeesFastChanges)
}

// TestSharedViewSeesFastChanges: a host that does not share the view (C,
// another process) makes fast changes, which leave the namespace
// generation as it was, in the class the sharing mounts take their inode
// numbers from and in the root directory's. A CreateFiles on the shared
// view must see both: the name C created, and the inode number C took.
func TestSharedViewSeesFastChanges(t *testing.T) {
	dev := newImage(t, 1<<30)
	mustFormat(t, dev, FormatOptions{Slots: 4})
	views := NewViews()
	c := mustMountViews(t, dev, "C", nil) // slot 0: the root directory's class
	a := mustMountViews(t, dev, "A", views)
	b := mustMountViews(t, dev, "B", views)
	if dirClass(rootIno) == uint32(a.Slot()%MaxSlots) {
		t.Fatalf("A's class is the root directory's (%d): the test tells nothing apart", a.Slot())
	}
	if _, err := a.CreateFiles("P", vmFiles()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat("P/VM.vhd"); err != nil {
		t.Fatal(err)
	}
	g0, _ := a.nsGenNow()
	// C's file in P takes the next free number of P's class, A's slot's:
	// the one A's next new directory would take from a stale view.
	f, err := c.Create("P/late.txt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("C's data"), 0); err != nil {
		t.Fatal(err)
	}
	if dirClass(f.ino) != uint32(a.Slot()%MaxSlots) {
		t.Fatalf("C's file took inode %d (class %d), not in A's class %d: the test tests nothing", f.ino, dirClass(f.ino), a.Slot())
	}
	if _, err := c.Create("X"); err != nil { // a fast create in the root directory
		t.Fatal(err)
	}
	if g, _ := a.nsGenNow(); g != g0 {
		t.Fatalf("C's creates changed the namespace generation (%d -> %d): not fast changes, the test tests nothing", g0, g)
	}
	if _, err := a.CreateFiles("X", vmFiles()); !errors.Is(err, ErrExist) {
		t.Fatalf("CreateFiles X after C created the file X: %v, want ErrExist", err)
	}
	fs, err := a.CreateFiles("Q", vmFiles())
	if err != nil {
		t.Fatal(err)
	}
	for _, nf := range fs {
		if nf.ino == f.ino {
			t.Fatalf("CreateFiles gave %s inode %d, which C's P/late.txt holds", nf.path, nf.ino)
		}
	}
	g, err := b.Open("P/late.txt")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if _, err := g.ReadAt(buf, 0); err != nil || string(buf) != "C's data" {
		t.Fatalf("P/late.txt after A's CreateFiles: %q, %v", buf, err)
	}
	unmountAndCheck(t, dev, a, b, c)
}

// TestSharedViewConcurrent: goroutines of four mounts sharing a view and
// of one that does not create and remove VM directories, fast-create and
// remove files in them, and read them, all at once (run it with -race);
// every mount then sees every surviving file and Check finds nothing.
func TestSharedViewConcurrent(t *testing.T) {
	dev := newImage(t, 2<<30)
	mustFormat(t, dev, FormatOptions{Slots: 8})
	views := NewViews()
	var vs []*Volume
	for i := range 5 {
		w := views
		if i == 4 {
			w = nil
		}
		vs = append(vs, mustMountViews(t, dev, fmt.Sprintf("node%d", i), w))
	}
	const perMount, vms = 2, 12
	var wg sync.WaitGroup
	for m, v := range vs {
		for g := range perMount {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range vms {
					dir := fmt.Sprintf("m%dg%dvm%d", m, g, i)
					if _, err := v.CreateFiles(dir, vmFiles()); err != nil {
						t.Error(err)
						return
					}
					if _, err := v.Create(dir + "/extra"); err != nil {
						t.Error(err)
						return
					}
					if _, err := vs[(m+1)%len(vs)].Stat(dir + "/extra"); err != nil {
						t.Error(err)
						return
					}
					if err := v.Remove(dir + "/extra"); err != nil {
						t.Error(err)
						return
					}
					if i%3 == 0 { // RemoveDirOnly: grouped with others' (removedirs.go)
						if err := vs[(m+2)%len(vs)].RemoveDirOnly(dir, []string{"VM.vhd", "VM.xml"}); err != nil {
							t.Error(err)
							return
						}
					}
				}
			}()
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for m := range vs {
		for g := range perMount {
			for i := range vms {
				dir := fmt.Sprintf("m%dg%dvm%d", m, g, i)
				for _, v := range vs {
					_, err := v.Stat(dir + "/VM.vhd")
					if gone := i%3 == 0; gone != errors.Is(err, ErrNotExist) || (!gone && err != nil) {
						t.Fatalf("%s on %s: %v (removed: %v)", dir, v.Node(), err, gone)
					}
				}
			}
		}
	}
	unmountAndCheck(t, dev, vs...)
}

// TestViewsDroppedWithLastMount: a shared view lives as long as a mount of
// the process uses it (unmounted, detached or crashed), so a long-lived
// agent holds none of a volume it left.
func TestViewsDroppedWithLastMount(t *testing.T) {
	dev := newImage(t, 1<<30)
	mustFormat(t, dev, FormatOptions{Slots: 4})
	views := NewViews()
	count := func() int {
		views.mu.Lock()
		defer views.mu.Unlock()
		return len(views.m)
	}
	a := mustMountViews(t, dev, "A", views)
	b := mustMountViews(t, dev, "B", views)
	c := mustMountViews(t, dev, "C", views)
	if a.nsv != b.nsv || count() != 1 {
		t.Fatalf("three mounts of one volume: %d views, shared %v", count(), a.nsv == b.nsv)
	}
	if err := a.Unmount(); err != nil {
		t.Fatal(err)
	}
	if err := b.Detach(); err != nil {
		t.Fatal(err)
	}
	if count() != 1 {
		t.Fatalf("one mount left: %d views, want 1", count())
	}
	c.Crash()
	if count() != 0 {
		t.Fatalf("no mount left: %d views, want 0", count())
	}
	d := mustMountViews(t, dev, "D", views)
	if d.nsv == c.nsv || count() != 1 {
		t.Fatalf("a new mount after the last left: %d views, reused the dropped one: %v", count(), d.nsv == c.nsv)
	}
}
