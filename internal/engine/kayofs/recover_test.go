package kayofs

import (
	"bytes"
	"errors"
	"testing"
)

// A node dies after committing a transaction to its journal but before
// writing it in place. A node that is already mounted must replay it the
// next time it takes a lock, before allocating: the dead node's file keeps
// its acknowledged mapping and no block is handed out twice.
func TestLiveNodeReplaysDeadNodesJournal(t *testing.T) {
	dev := newImage(t, 1<<30)
	mustFormat(t, dev, FormatOptions{Slots: 2})
	a := mustMount(t, dev, "Y-21-2k8x64")
	b := mustMount(t, dev, "Y-22-2k8x64")
	fa, err := a.Create("a.vhd")
	if err != nil {
		t.Fatal(err)
	}
	data := pattern("a", 1, 300<<10)
	if _, err := fa.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	// the conversion of the next write commits to the journal only
	more := pattern("a", 2, 200<<10)
	testHookAfterJournal = func(v *Volume) bool { return v == a }
	_, err = fa.WriteAt(more, 300<<10)
	testHookAfterJournal = nil
	if !errors.Is(err, errTestCrash) {
		t.Fatalf("expected the injected crash, got %v", err)
	}
	if p, _ := readPending(dev, a.sbl(), a.Slot()); p == nil {
		t.Fatal("journal of the dead node is clean; the test injected nothing")
	}
	a.Crash()
	// b allocates: it must first replay a's journal
	fb, err := b.Create("b.vhd")
	if err != nil {
		t.Fatal(err)
	}
	if err := fb.Allocate(64 << 20); err != nil {
		t.Fatal(err)
	}
	if p, _ := readPending(dev, b.sbl(), 0); p != nil {
		t.Fatal("dead node's journal still dirty after a live node took a lock")
	}
	fa2, err := b.Open("a.vhd")
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 300<<10)
	if _, err := fa2.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("acknowledged data of the dead node lost (%v)", err)
	}
	// the transaction was committed, so its effect (the first allocation
	// round of the write) is durable
	b.Unmount()
	if _, err := Mount(dev, "Y-21-2k8x64"); err != nil { // rejoin reclaims the dead slot
		t.Fatal(err)
	}
	si, _ := Slots(dev)
	if si[a.Slot()].State != "mounted" || si[a.Slot()].Node != "Y-21-2k8x64" {
		t.Fatalf("slots %+v", si)
	}
}

func TestRecoverAfterCrashedMount(t *testing.T) {
	dev := newImage(t, 512<<20)
	mustFormat(t, dev, FormatOptions{Slots: 2})
	a := mustMount(t, dev, "n1")
	f, _ := a.Create("x")
	f.WriteAt([]byte("hello"), 0)
	testHookAfterJournal = func(v *Volume) bool { return true }
	a.Mkdir("dir")
	testHookAfterJournal = nil
	a.Crash()
	// Check sees the pending transaction as replayable, not as a problem
	mustCheck(t, dev)
	if err := Recover(dev, a.Slot()); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, dev)
	v := mustMount(t, dev, "n2")
	if fi, err := v.Stat("dir"); err != nil || !fi.IsDir {
		t.Fatalf("committed mkdir lost after recovery: %v", err)
	}
	v.Unmount()
	mustCheck(t, dev)
}

// recoverDead remembers slots it found ownerless and clean. A node that
// mounts such a slot later, commits to its journal only and dies must
// still be replayed by a mount that had remembered the slot as clean.
func TestDeadCheckCacheSeesNewMount(t *testing.T) {
	for _, leave := range []string{"crash", "detach-then-crash"} {
		t.Run(leave, func(t *testing.T) {
			dev := newImage(t, 512<<20)
			mustFormat(t, dev, FormatOptions{Slots: 3})
			b := mustMount(t, dev, "B")
			defer b.Unmount()
			if err := b.Mkdir("d"); err != nil { // b learns: the other slots are clean
				t.Fatal(err)
			}
			if leave == "detach-then-crash" {
				a := mustMount(t, dev, "A")
				if err := a.Mkdir("a0"); err != nil {
					t.Fatal(err)
				}
				if err := a.Detach(); err != nil {
					t.Fatal(err)
				}
				if err := b.Mkdir("d2"); err != nil { // the detached slot: clean again
					t.Fatal(err)
				}
			}
			a := mustMount(t, dev, "A")
			testHookAfterJournal = func(v *Volume) bool { return v == a }
			err := a.Mkdir("a1")
			testHookAfterJournal = nil
			if !errors.Is(err, errTestCrash) {
				t.Fatalf("expected the injected crash, got %v", err)
			}
			a.Crash()
			if _, err := b.Stat("a1"); err != nil {
				t.Fatalf("the dead node's committed mkdir was not replayed: %v", err)
			}
			if p, _ := readPending(dev, b.sbl(), a.Slot()); p != nil {
				t.Fatal("dead node's journal still dirty")
			}
		})
	}
}

// A live node's journal is never replayed by another node's dead-node
// check, whether the node holds the owner lock (one probe) or not (an
// older binary: the recovery-lock protocol finds its liveness lock held).
func TestLiveNodesJournalLeftAlone(t *testing.T) {
	for _, c := range []struct {
		name  string
		owner bool
	}{{"owner lock", true}, {"no owner lock", false}} {
		t.Run(c.name, func(t *testing.T) {
			dev := newImage(t, 512<<20)
			mustFormat(t, dev, FormatOptions{Slots: 3})
			a := mustMount(t, dev, "A")
			defer a.Crash()
			b := mustMount(t, dev, "B")
			defer b.Unmount()
			ofd := a.lk.cl.(*OFDLocks)
			if !ofd.owner.Load() {
				t.Fatal("mount did not take its owner lock")
			}
			if !c.owner {
				ofd.ReleaseSlot(a.Slot())                    // drops owner and liveness lock
				if got, _ := ofd.ClaimSlot(a.Slot()); !got { // liveness lock again
					t.Fatal("could not retake the liveness lock")
				}
				ofd.Unlock(keyOwner(a.Slot()), true)
				ofd.owner.Store(false)
			}
			// a stops between its journal commit and the in-place writes,
			// alive: a journal that looks like a dead node's
			testHookAfterJournal = func(v *Volume) bool { return v == a }
			err := a.Mkdir("x")
			testHookAfterJournal = nil
			if !errors.Is(err, errTestCrash) {
				t.Fatalf("expected the injected stop, got %v", err)
			}
			lc := lockCalls.Load()
			if err := b.Mkdir("y"); err != nil {
				t.Fatal(err)
			}
			if p, _ := readPending(dev, b.sbl(), a.Slot()); p == nil {
				t.Fatal("another node replayed a live node's journal")
			}
			if _, err := b.Stat("x"); !errors.Is(err, ErrNotExist) {
				t.Fatalf("live node's unapplied mkdir visible: %v", err)
			}
			t.Logf("%d lock calls for b's mkdir", lockCalls.Load()-lc)
		})
	}
}
