package kayofs

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// within runs f and reports whether it returned within d; a call still
// running is waited for by wait.
func within(d time.Duration, f func() error) (done bool, wait func() error, err error) {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	select {
	case err := <-ch:
		return true, func() error { return err }, err
	case <-time.After(d):
		return false, func() error { return <-ch }, nil
	}
}

// smallFile: create + 4 KiB write + fsync + read back + delete of dir/name.
func smallFile(v *Volume, dir, name string) func() error {
	return func() error {
		p := dir + "/" + name
		f, err := v.Create(p)
		if err != nil {
			return err
		}
		buf := leasePattern(v.Node(), 1)[:4096]
		if _, err := f.WriteAt(buf, 0); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		got := make([]byte, len(buf))
		if _, err := f.ReadAt(got, 0); err != nil {
			return err
		}
		if string(got) != string(buf) {
			return errors.New("read back differs")
		}
		return v.Remove(p)
	}
}

// TestDirDomainsHeldAtOnce: two hosts on on-disk leases, each working in
// its own directory (as each host does with its VMs' folders). While host
// B holds the namespace lock (as a mkdir or rename does), host A still
// creates, writes and removes files in its directory; while A holds its
// directory's domain, B works in its own, but B's create in A's directory
// waits for A and is then seen by A, without a namespace change.
func TestDirDomainsHeldAtOnce(t *testing.T) {
	img, dev := newLeaseImage(t)
	a := mountLease(t, img, "A", t.Logf)
	b := mountLease(t, img, "B", t.Logf)
	for _, c := range []struct {
		v   *Volume
		dir string
	}{{a, "a"}, {b, "b"}} {
		if err := c.v.Mkdir(c.dir); err != nil {
			t.Fatal(err)
		}
	}
	fa, err := a.Stat("a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat("b"); err != nil {
		t.Fatal(err)
	}

	// B holds the namespace lock: A works in its directory meanwhile.
	if err := b.lk.lock(keyNS, true); err != nil {
		t.Fatal(err)
	}
	done, wait, err := within(10*time.Second, smallFile(a, "a", "f"))
	b.lk.unlock(keyNS, true)
	if !done {
		t.Errorf("A's create/write/remove in its own directory waited for B's namespace lock (then: %v)", wait())
	} else if err != nil {
		t.Fatalf("A in its directory while B holds the namespace lock: %v", err)
	}

	// A holds its directory's domain: B works in its own, not in A's.
	ka := keyDir(dirClass(fa.Ino))
	if err := a.lk.lock(ka, true); err != nil {
		t.Fatal(err)
	}
	done, wait, err = within(10*time.Second, smallFile(b, "b", "f"))
	if !done {
		a.lk.unlock(ka, true)
		t.Fatalf("B's work in its own directory waited for A's directory domain (then: %v)", wait())
	} else if err != nil {
		t.Fatalf("B in its directory while A holds its directory's domain: %v", err)
	}
	done, wait, err = within(time.Second, func() error { _, err := b.Create("a/g"); return err })
	a.lk.unlock(ka, true)
	if done {
		t.Fatalf("B created a/g while A held a's directory domain (%v)", err)
	}
	if err := wait(); err != nil {
		t.Fatalf("B's create of a/g after A let go: %v", err)
	}
	if _, err := a.Stat("a/g"); err != nil {
		t.Fatalf("A does not see B's a/g: %v", err)
	}
	if _, err := a.Create("a/g"); !errors.Is(err, ErrExist) {
		t.Fatalf("A creating a/g beside B's: %v, want ErrExist", err)
	}
	if err := a.Remove("a/g"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat("a/g"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("B still sees a/g after A removed it: %v", err)
	}
	if err := a.Unmount(); err != nil {
		t.Fatal(err)
	}
	if err := b.Unmount(); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, dev)
}

// TestDirDomainsKeepNamespaceGeneration: two mounts creating and removing
// files in their own directories, each right after the other's mkdir,
// never change the namespace generation: a mount whose view is older
// than the namespace reloads it and stays in its directory's domain. (A
// fast change that fell back to the namespace path changed the generation
// again, so two busy hosts sent each other there at every change.)
func TestDirDomainsKeepNamespaceGeneration(t *testing.T) {
	dev := newImage(t, 1<<30)
	mustFormat(t, dev, FormatOptions{Slots: 2})
	a, b := mustMount(t, dev, "A"), mustMount(t, dev, "B")
	if err := a.Mkdir("a"); err != nil {
		t.Fatal(err)
	}
	if err := b.Mkdir("b"); err != nil {
		t.Fatal(err)
	}
	g0, ok := a.nsGenNow()
	if !ok {
		t.Fatal("namespace header unreadable")
	}
	for i := 0; i < 20; i++ {
		for _, c := range []struct {
			v   *Volume
			dir string
		}{{a, "a"}, {b, "b"}} {
			if _, err := c.v.Create(fmt.Sprintf("%s/f%d", c.dir, i)); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []struct {
			v   *Volume
			dir string
		}{{a, "a"}, {b, "b"}} {
			if err := c.v.Remove(fmt.Sprintf("%s/f%d", c.dir, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if g, _ := a.nsGenNow(); g != g0 {
		t.Errorf("namespace generation %d after 80 file creates and removes in own directories, was %d", g, g0)
	}
	if err := a.Unmount(); err != nil {
		t.Fatal(err)
	}
	if err := b.Unmount(); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, dev)
}

// readBytesDevice counts the bytes read through it.
type readBytesDevice struct {
	*FileDevice
	read atomic.Int64
}

func (d *readBytesDevice) ReadAt(p []byte, off int64) (int, error) {
	d.read.Add(int64(len(p)))
	return d.FileDevice.ReadAt(p, off)
}

// TestRemoveDirSeesFastChanges: host B creates and removes files in a VM
// directory by fast changes (no namespace generation) after host A's view
// of it was current. A's RemoveDirOnly, which re-reads only that
// directory's entries (loadNSDirs), must still see B's file and refuse, see
// B's removal, and once B's file is gone remove everything: Check finds no
// orphan entry and no leaked block.
func TestRemoveDirSeesFastChanges(t *testing.T) {
	dev := newImage(t, 1<<30)
	mustFormat(t, dev, FormatOptions{Slots: 2})
	a, b := mustMount(t, dev, "A"), mustMount(t, dev, "B")
	for i := range 3 {
		if _, err := a.CreateFiles(fmt.Sprintf("VM%d", i), []NewFile{{Name: "VM.vhd", Data: []byte("vhd")},
			{Name: "VM.xml", Data: []byte("xml")}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Stat("VM1/VM.vhd"); err != nil { // B's view current
		t.Fatal(err)
	}
	g0, _ := a.nsGenNow()
	f, err := b.Create("VM1/late.txt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("B's"), 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Remove("VM1/VM.xml"); err != nil {
		t.Fatal(err)
	}
	if g, _ := a.nsGenNow(); g != g0 {
		t.Fatalf("B's create and remove changed the namespace generation (%d -> %d): not fast changes, the test tests nothing", g0, g)
	}
	ours := []string{"VM.vhd", "VM.xml"}
	if err := a.RemoveDirOnly("VM1", ours); !errors.Is(err, ErrNotEmpty) || !strings.Contains(err.Error(), "late.txt") {
		t.Fatalf("RemoveDirOnly with B's file in the directory: got %v, want ErrNotEmpty naming late.txt", err)
	}
	if err := b.Remove("VM1/late.txt"); err != nil {
		t.Fatal(err)
	}
	if err := a.RemoveDirOnly("VM1", ours); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat("VM1"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("B after A's RemoveDirOnly: %v, want ErrNotExist", err)
	}
	for _, v := range []*Volume{a, b} {
		if err := v.Unmount(); err != nil {
			t.Fatal(err)
		}
	}
	mustCheck(t, dev)
}

// TestRemoveDirReadsItsDirectory: with 16 nodes mounted and a directory
// table of 240 VMs, one RemoveDir reads its directory's entries, not the
// whole table again (it did for every VM a destroy removed), and runs the
// dead-node check once for the 64 directory domains it takes, not after
// each (each probes every other slot's owner).
func TestRemoveDirReadsItsDirectory(t *testing.T) {
	fd := newImage(t, 64<<30)
	dev := &readBytesDevice{FileDevice: fd}
	sb := mustFormat(t, dev, FormatOptions{Slots: 16})
	var vs []*Volume
	for i := range 16 {
		v := mustMount(t, dev, fmt.Sprintf("node%d", i))
		t.Cleanup(func() { _ = v.Unmount() })
		vs = append(vs, v)
	}
	for i := range 240 {
		if _, err := vs[i%16].CreateFiles(fmt.Sprintf("VM%03d", i), []NewFile{{Name: "VM.vhd", Data: []byte("vhd")},
			{Name: "VM.xml", Data: []byte("xml")}}); err != nil {
			t.Fatal(err)
		}
	}
	// The view of node 1 current, as it is between a destroy's removals.
	if err := vs[1].RemoveDir("VM000"); err != nil {
		t.Fatal(err)
	}
	hw := vs[1].nsv.c.hdr.hw
	table := int64(sb.direntBlocksBelow(hw)) * int64(sb.BlockSize)
	r0, l0 := dev.read.Load(), lockCalls.Load()
	if err := vs[1].RemoveDir("VM001"); err != nil {
		t.Fatal(err)
	}
	read, locks := dev.read.Load()-r0, lockCalls.Load()-l0
	t.Logf("RemoveDir: %d bytes read (directory table %d bytes), %d lock calls", read, table, locks)
	if read >= table/2 {
		t.Errorf("RemoveDir read %d bytes, the directory table is %d: it re-read the table, not its directory's entries", read, table)
	}
	// 64 domains taken and released, a few more keys, one check of 15
	// slots per newly taken metadata lock other than the domains.
	if locks > 400 {
		t.Errorf("RemoveDir made %d lock calls: more than one dead-node check for the directory domains", locks)
	}
}
