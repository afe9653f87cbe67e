package kayofs

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"testing"
	"time"
)

// Two nodes are mounted; one grows the volume past what was formatted. The
// other node, whose view predates the growth, fills the new space and
// frees blocks the grower allocated in the appended groups.
func TestGrowOnline(t *testing.T) {
	dev := newImage(t, 1<<30)
	sb0 := mustFormat(t, dev, FormatOptions{Slots: 2, Size: 64 << 20})
	a := mustMount(t, dev, "Y-21-2k8x64")
	b := mustMount(t, dev, "Y-22-2k8x64")
	st0, err := b.Stats()
	if err != nil {
		t.Fatal(err)
	}
	fb, err := b.Create("b.vhd")
	if err != nil {
		t.Fatal(err)
	}
	if err := fb.Allocate(st0.FreeBytes + 1<<20); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("allocating past the formatted size: %v, want ErrNoSpace", err)
	}
	if err := fb.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if err := a.Grow(32 << 20); !errors.Is(err, ErrInvalid) {
		t.Fatalf("shrink: %v, want ErrInvalid", err)
	}
	if err := a.Grow(2 << 30); !errors.Is(err, ErrInvalid) {
		t.Fatalf("grow past the device: %v, want ErrInvalid", err)
	}
	if err := a.Grow(700 << 20); err != nil {
		t.Fatal(err)
	}
	sb1 := a.Superblock()
	if sb1.AGCount <= sb0.AGCount || sb1.Size() > 700<<20 || sb1.Size() < 700<<20-int64(sb1.agSpan())*4096 {
		t.Fatalf("grown superblock: %d groups (was %d), %d bytes", sb1.AGCount, sb0.AGCount, sb1.Size())
	}
	mustCheck(t, dev)
	// a writes a file that only fits in the new space
	fa, err := a.Create("a.vhd")
	if err != nil {
		t.Fatal(err)
	}
	data := pattern("a", 1, 56<<20) // more than the 64 MiB volume had free
	if _, err := fa.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	// b (stale view) allocates in the new groups and frees part of a.vhd
	if err := fb.Allocate(300 << 20); err != nil {
		t.Fatalf("allocating in grown space from a node with an older view: %v", err)
	}
	fa2, err := b.Open("a.vhd")
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	if _, err := fa2.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back a.vhd on b: %v", err)
	}
	if err := fa2.Truncate(10 << 20); err != nil {
		t.Fatal(err)
	}
	st1, err := b.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st1.DataBytes <= st0.DataBytes+600<<20 {
		t.Fatalf("stats after grow: %+v (before %+v)", st1, st0)
	}
	// growing again, to the end of the device
	if err := b.Grow(dev.Size()); err != nil {
		t.Fatal(err)
	}
	if err := a.Grow(dev.Size()); err != nil { // idempotent
		t.Fatal(err)
	}
	a.Unmount()
	b.Unmount()
	mustCheck(t, dev)
	v := mustMount(t, dev, "verifier")
	if sb := v.Superblock(); sb.Size() < 1<<30-int64(sb.agSpan())*4096 {
		t.Fatalf("size after growing to the device end: %d", sb.Size())
	}
	v.Unmount()
}

// Slots added online are usable at once by new nodes, and a node mounted
// before the change replays the journal of a node that died in a new slot.
func TestAddSlotsOnline(t *testing.T) {
	dev := newImage(t, 1<<30)
	mustFormat(t, dev, FormatOptions{Slots: 2})
	a := mustMount(t, dev, "A")
	b := mustMount(t, dev, "B")
	if _, err := Mount(dev, "C"); !errors.Is(err, ErrNoSlot) {
		t.Fatalf("third mount on two slots: %v", err)
	}
	if err := a.AddSlots(63); !errors.Is(err, ErrInvalid) {
		t.Fatalf("65 slots: %v, want ErrInvalid", err)
	}
	if err := a.AddSlots(2); err != nil {
		t.Fatal(err)
	}
	if err := b.SetSlots(3); !errors.Is(err, ErrInvalid) {
		t.Fatalf("removing a slot: %v, want ErrInvalid", err)
	}
	c := mustMount(t, dev, "C")
	if c.Slot() < 2 {
		t.Fatalf("C got slot %d", c.Slot())
	}
	fc, err := c.Create("c.vhd")
	if err != nil {
		t.Fatal(err)
	}
	data := pattern("c", 1, 256<<10)
	if _, err := fc.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	testHookAfterJournal = func(v *Volume) bool { return v == c }
	_, err = fc.WriteAt(pattern("c", 2, 128<<10), 256<<10)
	testHookAfterJournal = nil
	if !errors.Is(err, errTestCrash) {
		t.Fatalf("expected the injected crash, got %v", err)
	}
	c.Crash()
	// b mounted when there were 2 slots; it must see slot 2's journal
	fb, err := b.Create("b.vhd")
	if err != nil {
		t.Fatal(err)
	}
	if err := fb.Allocate(32 << 20); err != nil {
		t.Fatal(err)
	}
	if p, _ := readPending(dev, b.sbl(), c.Slot()); p != nil {
		t.Fatal("journal of the node that died in an added slot was not replayed")
	}
	d := mustMount(t, dev, "D") // may take C's dead slot: its journal is clean now
	for _, v := range []*Volume{a, b, d} {
		if err := v.Unmount(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := RecoverAll(dev); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, dev)
	if sb, _ := ReadSuperblock(dev); sb.SlotCount != 4 {
		t.Fatalf("slot count %d, want 4", sb.SlotCount)
	}
}

// A crash between the two superblock copies leaves a valid volume of the
// new size; the next mount repairs the backup.
func TestGrowCrashBetweenCopies(t *testing.T) {
	dev := newImage(t, 256<<20)
	mustFormat(t, dev, FormatOptions{Slots: 2, Size: 64 << 20})
	a := mustMount(t, dev, "A")
	testHookGrow = func() bool { return true }
	err := a.Grow(256 << 20)
	testHookGrow = nil
	if !errors.Is(err, errTestCrash) {
		t.Fatalf("expected the injected crash, got %v", err)
	}
	a.Crash()
	if probs, _ := Check(dev); len(probs) != 1 || probs[0].Area != "superblock" {
		t.Fatalf("check before repair: %v (want only the stale backup)", probs)
	}
	if _, err := RecoverAll(dev); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, dev)
	v := mustMount(t, dev, "A")
	if sb := v.Superblock(); sb.Size() <= 64<<20 {
		t.Fatalf("size %d after a grow whose primary superblock landed", sb.Size())
	}
	f, _ := v.Create("x")
	if err := f.Allocate(150 << 20); err != nil {
		t.Fatal(err)
	}
	v.Unmount()
	mustCheck(t, dev)
}

// A process growing the volume and adding slots between file operations is
// killed (SIGKILL) at random points, including in the middle of a
// superblock write. Afterwards the volume checks clean, is at least as
// large as every acknowledged growth made it, acknowledged data reads back,
// and it mounts again.
func TestCrashGrow(t *testing.T) {
	iters := 8
	if os.Getenv("KAYOFS_LONG") == "1" {
		iters = 200
	}
	dev := newImage(t, 512<<20)
	seed := time.Now().UnixNano()
	if s, err := strconv.ParseInt(os.Getenv("KAYOFS_CRASH_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	models := map[string]*fileModel{}
	var minSize int64
	var minSlots uint32
	for it := 0; it < iters; it++ {
		env := []string{"KAYOFS_IMG=" + dev.Path(), "KAYOFS_NODE=grower", "KAYOFS_CRASHY=1", "KAYOFS_GROW=1",
			fmt.Sprintf("KAYOFS_SEED=%d", it+1), "KAYOFS_OPS=40", fmt.Sprintf("KAYOFS_KILL_AFTER=%d", 1+rng.Intn(200))}
		if it == 0 {
			env = append(env, "KAYOFS_FORMAT=1", fmt.Sprintf("KAYOFS_FORMAT_SIZE=%d", 40<<20))
		}
		cmd, sc := startChild(t, env...)
		var lines []string
		for sc.Scan() {
			l := sc.Text()
			lines = append(lines, l)
			var sz int64
			var sl uint32
			if _, err := fmt.Sscanf(l, "GREW %d %d", &sz, &sl); err == nil {
				minSize, minSlots = max(minSize, sz), max(minSlots, sl)
			}
		}
		_ = cmd.Wait()
		sb, err := ReadSuperblock(dev)
		if err != nil {
			if it == 0 && !contains(lines, "FORMATTED") {
				if _, err := Format(dev, FormatOptions{Slots: 2, Force: true, Size: 40 << 20}); err != nil {
					t.Fatal(err)
				}
				continue
			}
			t.Fatalf("iteration %d: superblock lost: %v", it, err)
		}
		if sb.Size() < minSize || sb.SlotCount < minSlots {
			t.Fatalf("iteration %d: volume is %d bytes with %d slots; acknowledged %d bytes, %d slots", it, sb.Size(), sb.SlotCount, minSize, minSlots)
		}
		replayLog(t, lines, models)
		if _, err := RecoverAll(dev); err != nil {
			t.Fatalf("iteration %d: recover: %v", it, err)
		}
		probs, err := Check(dev)
		if err != nil {
			t.Fatalf("iteration %d: check: %v", it, err)
		}
		for _, p := range probs {
			t.Errorf("iteration %d (log tail %q): %s", it, tail(lines, 3), p)
		}
		if t.Failed() {
			return
		}
		v, err := Mount(dev, "verifier")
		if err != nil {
			t.Fatalf("iteration %d: remount: %v", it, err)
		}
		for name, m := range models {
			m.verify(t, v, name)
			if f, err := v.Open(name); err == nil {
				sz, _ := f.Size()
				m.data = make([]byte, sz)
				_, _ = f.ReadAt(m.data, 0)
				m.size, m.sizeKnown = sz, true
				m.known = trueSlice(int(sz))
			}
		}
		if err := v.Unmount(); err != nil {
			t.Fatal(err)
		}
	}
	sb, _ := ReadSuperblock(dev)
	t.Logf("grown to %d bytes, %d slots", sb.Size(), sb.SlotCount)
	mustCheck(t, dev)
}

// The LUN image grows under an open device (the engine extends it, then
// grows the file system through a mount it already holds).
func TestGrowAfterDeviceExtended(t *testing.T) {
	dev := newImage(t, 64<<20)
	mustFormat(t, dev, FormatOptions{Slots: 2})
	v := mustMount(t, dev, "A")
	if err := os.Truncate(dev.Path(), 256<<20); err != nil {
		t.Fatal(err)
	}
	if err := v.Grow(256 << 20); err != nil {
		t.Fatal(err)
	}
	f, _ := v.Create("x")
	if err := f.Allocate(150 << 20); err != nil {
		t.Fatal(err)
	}
	v.Unmount()
	mustCheck(t, dev)
}
