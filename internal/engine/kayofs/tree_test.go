package kayofs

import (
	"bytes"
	"math/rand"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"
)

// scatter writes n random small blocks into a preallocated ("fixed VHD")
// file and checks every byte against a model.
func scatter(t *testing.T, v *Volume, f *File, model []byte, rng *rand.Rand, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		sz := 512 + rng.Intn(8<<10)
		off := rng.Int63n(int64(len(model) - sz))
		p := pattern(f.Name(), int64(i), sz)
		if _, err := f.WriteAt(p, off); err != nil {
			t.Fatalf("write %d at %d: %v", i, off, err)
		}
		copy(model[off:], p)
	}
}

func verifyFile(t *testing.T, f *File, model []byte) {
	t.Helper()
	got := make([]byte, len(model))
	if _, err := f.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if i := firstDiff(got, model); i >= 0 {
		t.Fatalf("%s: byte %d is %#x, want %#x", f.Name(), i, got[i], model[i])
	}
}

func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return len(a)
}

func inodeOf(t *testing.T, v *Volume, f *File) *inode {
	t.Helper()
	tx := v.newTxn()
	defer tx.release()
	if err := tx.lock(keyInode(f.ino), false); err != nil {
		t.Fatal(err)
	}
	in, err := tx.inode(f.ino)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// A fixed VHD takes thousands of scattered writes: far more extents than
// an inode holds inline. Another node reads it all back, truncates and
// removes it; every block comes back.
func TestExtentTreeScatteredWrites(t *testing.T) {
	const writes = 600
	dev := newImage(t, 1<<30)
	mustFormat(t, dev, FormatOptions{Slots: 2})
	a := mustMount(t, dev, "Y-21-2k8x64")
	b := mustMount(t, dev, "Y-22-2k8x64")
	st0, err := a.Stats()
	if err != nil {
		t.Fatal(err)
	}
	f, err := a.Create("WEB01.vhd")
	if err != nil {
		t.Fatal(err)
	}
	const size = 96 << 20
	if err := f.Allocate(size); err != nil {
		t.Fatal(err)
	}
	model := make([]byte, size)
	rng := rand.New(rand.NewSource(1))
	start := time.Now()
	scatter(t, a, f, model, rng, writes)
	in := inodeOf(t, a, f)
	t.Logf("%d scattered writes in %v: %d extents, tree depth %d", writes, time.Since(start), len(in.ext), in.depth)
	if len(in.ext) <= maxExtents(4096) || in.depth == 0 {
		t.Fatalf("%d extents at depth %d: the test did not exceed the inline limit", len(in.ext), in.depth)
	}
	verifyFile(t, f, model)
	mustCheck(t, dev)
	// the other node sees the same tree and modifies it
	fb, err := b.Open("WEB01.vhd")
	if err != nil {
		t.Fatal(err)
	}
	verifyFile(t, fb, model)
	scatter(t, b, fb, model, rng, writes/10)
	verifyFile(t, f, model)
	if err := fb.Truncate(size / 3); err != nil {
		t.Fatal(err)
	}
	model = model[:size/3]
	verifyFile(t, f, model)
	mustCheck(t, dev)
	if err := b.Remove("WEB01.vhd"); err != nil {
		t.Fatal(err)
	}
	st1, err := a.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st1.FreeBytes != st0.FreeBytes {
		t.Fatalf("free bytes %d after removing the file, %d before it existed", st1.FreeBytes, st0.FreeBytes)
	}
	a.Unmount()
	b.Unmount()
	mustCheck(t, dev)
}

// Truncating a file with a tree back below the inline limit collapses the
// tree and frees its blocks; growing it again rebuilds one.
func TestExtentTreeCollapse(t *testing.T) {
	dev := newImage(t, 1<<30)
	mustFormat(t, dev, FormatOptions{Slots: 1})
	v := mustMount(t, dev, "A")
	defer v.Unmount()
	st0, _ := v.Stats()
	f, _ := v.Create("x.vhd")
	const size = 64 << 20
	if err := f.Allocate(size); err != nil {
		t.Fatal(err)
	}
	model := make([]byte, size)
	// every other 64 KiB cluster written: one extent per cluster
	for c := int64(0); c < size/65536; c += 2 {
		p := pattern("x", c, 100)
		if _, err := f.WriteAt(p, c*65536); err != nil {
			t.Fatal(err)
		}
		copy(model[c*65536:], p)
	}
	if in := inodeOf(t, v, f); in.depth != 1 || len(in.ext) < size/65536 {
		t.Fatalf("depth %d, %d extents", in.depth, len(in.ext))
	}
	mustCheck(t, dev)
	if err := f.Truncate(64 * 65536); err != nil {
		t.Fatal(err)
	}
	if in := inodeOf(t, v, f); in.depth != 0 {
		t.Fatalf("depth %d after truncating to %d extents", in.depth, len(in.ext))
	}
	verifyFile(t, f, model[:64*65536])
	mustCheck(t, dev)
	if err := v.Remove("x.vhd"); err != nil {
		t.Fatal(err)
	}
	if st, _ := v.Stats(); st.FreeBytes != st0.FreeBytes {
		t.Fatalf("leak: %d free, %d before", st.FreeBytes, st0.FreeBytes)
	}
	mustCheck(t, dev)
}

// Depth 2: tens of thousands of isolated writes into a 4 GiB fixed VHD
// (KAYOFS_LONG=1; about ten seconds).
func TestExtentTreeDeep(t *testing.T) {
	if os.Getenv("KAYOFS_LONG") != "1" {
		t.Skip("KAYOFS_LONG=1 runs it")
	}
	dev := newImage(t, 6<<30)
	mustFormat(t, dev, FormatOptions{Slots: 1})
	v := mustMount(t, dev, "A")
	f, _ := v.Create("big.vhd")
	const size = 4 << 30
	if err := f.Allocate(size); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(2))
	nw := 30000
	if n, err := strconv.Atoi(os.Getenv("KAYOFS_DEEP_WRITES")); err == nil {
		nw = n
	}
	clusters := rng.Perm(size / 65536)[:nw]
	start := time.Now()
	for i, c := range clusters {
		if _, err := f.WriteAt(pattern("d", int64(i), 512), int64(c)*65536+int64(rng.Intn(60000))/512*512); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	in := inodeOf(t, v, f)
	t.Logf("%d isolated writes in %v: %d extents, depth %d", len(clusters), time.Since(start), len(in.ext), in.depth)
	if in.depth < 2 {
		t.Fatalf("depth %d", in.depth)
	}
	mustCheck(t, dev)
	sort.Ints(clusters)
	if err := f.Truncate(int64(clusters[len(clusters)/2]) * 65536); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, dev)
	if err := v.Remove("big.vhd"); err != nil {
		t.Fatal(err)
	}
	v.Unmount()
	mustCheck(t, dev)
}

// Two nodes write scattered blocks into one fixed VHD at the same time
// (disjoint regions, as a VM and a backup agent might): both see each
// other's tree changes through their caches, nothing is lost, and the
// volume checks clean.
func TestExtentTreeTwoNodes(t *testing.T) {
	dev := newImage(t, 512<<20)
	mustFormat(t, dev, FormatOptions{Slots: 2})
	a := mustMount(t, dev, "A")
	b := mustMount(t, dev, "B")
	fa, err := a.Create("shared.vhd")
	if err != nil {
		t.Fatal(err)
	}
	const size = 64 << 20
	if err := fa.Allocate(size); err != nil {
		t.Fatal(err)
	}
	fb, err := b.Open("shared.vhd")
	if err != nil {
		t.Fatal(err)
	}
	model := make([]byte, size)
	done := make(chan error, 2)
	for i, f := range []*File{fa, fb} {
		go func(i int, f *File) {
			rng := rand.New(rand.NewSource(int64(i)))
			for w := 0; w < 250; w++ {
				// node i writes the clusters with parity i: disjoint regions
				c := int64(rng.Intn(size/65536/2))*2 + int64(i)
				off := c*65536 + int64(rng.Intn(60000))
				p := pattern(f.Name(), int64(i*1000+w), 1+rng.Intn(4000))
				if _, err := f.WriteAt(p, off); err != nil {
					done <- err
					return
				}
				copy(model[off:], p)
			}
			done <- nil
		}(i, f)
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if in := inodeOf(t, a, fa); in.depth == 0 {
		t.Fatalf("%d extents at depth 0: no tree", len(in.ext))
	}
	verifyFile(t, fa, model)
	verifyFile(t, fb, model)
	a.Unmount()
	b.Unmount()
	mustCheck(t, dev)
}

// A tree block whose group another node holds is freed after the commit,
// not by waiting for the group while holding another (deadlock order).
func TestTreeFreeDeferredWhileGroupBusy(t *testing.T) {
	dev := newImage(t, 256<<20)
	mustFormat(t, dev, FormatOptions{Slots: 2})
	a := mustMount(t, dev, "A")
	b := mustMount(t, dev, "B")
	st0, _ := a.Stats()
	tx := a.newTxn()
	blk, err := tx.allocTreeBlock(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.commit(); err != nil {
		t.Fatal(err)
	}
	tx.release()
	sb := a.sbl()
	g, _, _ := sb.agOf(blk)
	h := (g + 1) % sb.AGCount
	if err := b.lk.lock(keyAG(g), true); err != nil {
		t.Fatal(err)
	}
	tx = a.newTxn()
	if err := tx.lock(keyAG(h), true); err != nil {
		t.Fatal(err)
	}
	if err := tx.freeTree([]run{{blk, 1}}); err != nil {
		t.Fatal(err)
	}
	if len(tx.deferred) != 1 {
		t.Fatalf("deferred %v: the busy group's block was not deferred", tx.deferred)
	}
	released := make(chan struct{})
	go func() {
		time.Sleep(50 * time.Millisecond)
		b.lk.unlock(keyAG(g), true)
		close(released)
	}()
	if err := tx.commit(); err != nil {
		t.Fatal(err)
	}
	tx.release()
	<-released
	if st, _ := a.Stats(); st.FreeBytes != st0.FreeBytes {
		t.Fatalf("free %d, want %d", st.FreeBytes, st0.FreeBytes)
	}
	a.Unmount()
	b.Unmount()
	mustCheck(t, dev)
}
