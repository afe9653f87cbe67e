package kayofs

import (
	"errors"
	"testing"
	"time"
)

// TestNamespaceHolderDomainsOneRange: the namespace holder's 64 directory
// domains (lockNSAll) are one OFD byte range and one dead-node check when
// no other node holds any of them; when one does, they are taken one by
// one, ascending, and the holder waits for that one with none past it
// held, as single locks would.
func TestNamespaceHolderDomainsOneRange(t *testing.T) {
	dev := newImage(t, 1<<30)
	mustFormat(t, dev, FormatOptions{Slots: 2})
	a := mustMount(t, dev, "A")
	b := mustMount(t, dev, "B")
	if !a.sbl().DirDomains() {
		t.Fatal("the default format has no directory domains")
	}
	checks := 0
	onAcquire := a.lk.onAcquire
	a.lk.onAcquire = func(k int64) error { checks++; return onAcquire(k) }

	n0 := lockCalls.Load()
	if err := a.lk.lockRunExcl(keyDir(0), MaxSlots); err != nil {
		t.Fatal(err)
	}
	if n := lockCalls.Load() - n0; n != 1+(int64(a.sbl().SlotCount)-1) {
		// one range lock and one liveness probe per other slot
		t.Errorf("taking the 64 domains uncontended: %d lock calls, want %d", n, 1+a.sbl().SlotCount-1)
	}
	if checks != 1 {
		t.Errorf("taking the 64 domains: %d dead-node checks, want 1", checks)
	}
	for _, x := range []uint32{0, 37, MaxSlots - 1} {
		if got, err := b.lk.tryLock(keyDir(x)); err != nil || got {
			t.Fatalf("B took domain %d while A holds all 64 (%v)", x, err)
		}
	}
	a.lk.unlockRun(keyDir(0), MaxSlots)
	if got, err := b.lk.tryLock(keyDir(37)); err != nil || !got {
		t.Fatalf("B cannot take domain 37 after A let the 64 go (%v)", err)
	}
	b.lk.unlock(keyDir(37), true)

	// B holds domain 5: A waits for it, holding 0..4 only.
	if err := b.lk.lock(keyDir(5), true); err != nil {
		t.Fatal(err)
	}
	done, wait, err := within(300*time.Millisecond, func() error { return a.lk.lockRunExcl(keyDir(0), MaxSlots) })
	if done {
		b.lk.unlock(keyDir(5), true)
		t.Fatalf("A took the 64 domains while B held domain 5 (%v)", err)
	}
	if got, err := b.lk.tryLock(keyDir(60)); err != nil || !got {
		t.Fatalf("A waiting for domain 5 holds domain 60 (%v)", err)
	}
	b.lk.unlock(keyDir(60), true)
	b.lk.unlock(keyDir(5), true)
	if err := wait(); err != nil {
		t.Fatalf("A's 64 domains after B let domain 5 go: %v", err)
	}
	if got, err := b.lk.tryLock(keyDir(MaxSlots - 1)); err != nil || got {
		t.Fatalf("B took domain 63 while A holds all 64 (%v)", err)
	}
	a.lk.unlockRun(keyDir(0), MaxSlots)
	if err := a.Unmount(); err != nil {
		t.Fatal(err)
	}
	if err := b.Unmount(); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, dev)
}

// TestNamespaceChangeReplaysDeadDomainHolder: a node dies after
// committing a create in its directory's domain to its journal, before
// writing it in place. A namespace change of another node, which takes
// the namespace lock and every domain with one dead-node check after the
// last, replays that journal before it reads the directory table: a
// rename onto the dead node's file replaces it, and the volume checks
// clean.
func TestNamespaceChangeReplaysDeadDomainHolder(t *testing.T) {
	dev := newImage(t, 1<<30)
	mustFormat(t, dev, FormatOptions{Slots: 2})
	a := mustMount(t, dev, "A")
	b := mustMount(t, dev, "B")
	if err := b.Mkdir("d"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateFiles("e", []NewFile{{Name: "x", Data: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Create("x"); err != nil {
		t.Fatal(err)
	}
	testHookAfterJournal = func(v *Volume) bool { return v == b }
	_, err := b.Create("d/f")
	testHookAfterJournal = nil
	if !errors.Is(err, errTestCrash) {
		t.Fatalf("expected the injected crash, got %v", err)
	}
	if p, _ := readPending(dev, b.sbl(), b.Slot()); p == nil {
		t.Fatal("journal of the dead node is clean; the test injected nothing")
	}
	b.Crash()
	// Renaming x onto d/f is a namespace change (nothing before it takes a
	// lock) that looks d/f up: it must find f and replace it, not add a
	// second d/f.
	if err := a.Rename("x", "d/f"); err != nil {
		t.Fatal(err)
	}
	if p, _ := readPending(dev, a.sbl(), b.Slot()); p != nil {
		t.Fatal("the dead node's journal is still dirty after a namespace change")
	}
	if fi, err := a.ReadDir("d"); err != nil || len(fi) != 1 || fi[0].Name != "f" {
		t.Fatalf("d after the rename onto d/f: %+v (%v), want f alone", fi, err)
	}
	if err := a.Unmount(); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, dev)
}

// TestNamespaceReloadReadsClassesInUse: a namespace change reloads only
// the directory-entry runs of the classes the header records in use, and
// still sees every change: entries in a class that emptied are dropped,
// and a header whose record is older than its generation (a binary that
// does not keep it changed the namespace: testHookNoNSStamp) makes the
// reload read every class, so an entry in a class the record lacks is
// seen too.
func TestNamespaceReloadReadsClassesInUse(t *testing.T) {
	dev := newImage(t, 1<<30)
	mustFormat(t, dev, FormatOptions{Slots: 4})
	var vs []*Volume
	for _, n := range []string{"A", "B", "C"} {
		vs = append(vs, mustMount(t, dev, n))
	}
	a, b, c := vs[0], vs[1], vs[2]
	for _, d := range []struct {
		v    *Volume
		name string
	}{{a, "a"}, {b, "b"}} {
		if _, err := d.v.CreateFiles(d.name, []NewFile{{Name: "f", Data: []byte("f")}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Stat("b/f"); err != nil {
		t.Fatal(err)
	}
	hdr := func() (uint64, bool) {
		sb := a.sbl()
		raw, err := readBlock(dev, sb.bs(), sb.nsBlock())
		if err != nil {
			t.Fatal(err)
		}
		h, err := decodeNSHeader(raw, sb.InodeCount)
		if err != nil {
			t.Fatal(err)
		}
		return nsUsedClasses(raw, h.gen)
	}
	used, ok := hdr()
	want := uint64(1)<<0 | 1<<a.Slot() | 1<<b.Slot()
	if !ok || used != want {
		t.Fatalf("classes in use %b (valid %v), want %b", used, ok, want)
	}
	// C changes the namespace without keeping the record, in a class
	// the record lacks: A must see it.
	testHookNoNSStamp = true
	err := c.Mkdir("c")
	testHookNoNSStamp = false
	if err != nil {
		t.Fatal(err)
	}
	if used, ok := hdr(); ok {
		t.Fatalf("the record (%b) is still valid after a change that did not keep it", used)
	}
	if err := a.Mkdir("a3"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Stat("c"); err != nil {
		t.Fatalf("A does not see C's c: %v", err)
	}
	if used, ok := hdr(); !ok || used&(1<<c.Slot()) == 0 {
		t.Fatalf("classes in use %b (valid %v) after A's change: lacks C's class %d", used, ok, c.Slot())
	}
	// B empties its class; C's next change records the classes of its
	// view, without B's: A's reload skips that class and must drop b and
	// b/f from its view.
	if err := b.RemoveDir("b"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mkdir("c0"); err != nil {
		t.Fatal(err)
	}
	if used, ok := hdr(); !ok || used&(1<<b.Slot()) != 0 {
		t.Fatalf("classes in use %b (valid %v) after B emptied class %d", used, ok, b.Slot())
	}
	if err := a.Mkdir("a2"); err != nil { // A's namespace reload
		t.Fatal(err)
	}
	if _, err := a.Stat("b"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("A still sees b after B removed it: %v", err)
	}
	for _, v := range vs {
		if err := v.Unmount(); err != nil {
			t.Fatal(err)
		}
	}
	mustCheck(t, dev)
}
