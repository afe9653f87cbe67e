package kayofs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// powerDevice models a disk cache: reads see every write, but only what a
// Sync flushed is durable. At the cut (the cutAt-th write) it builds the
// image a power loss would leave: everything synced, plus any subset of the
// unsynced writes in any order, some of them torn at a sector boundary.
type powerDevice struct {
	*FileDevice
	mu      sync.Mutex
	durable *os.File // the synced state
	pending []pwrite
	n       int
	cutAt   int
	rng     *rand.Rand
	cut     string // path of the post-loss image once cut
}

type pwrite struct {
	off int64
	p   []byte
}

func (d *powerDevice) WriteAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	d.n++
	if d.n == d.cutAt {
		d.powerCut()
	}
	d.pending = append(d.pending, pwrite{off, append([]byte(nil), p...)})
	d.mu.Unlock()
	return d.FileDevice.WriteAt(p, off)
}

func (d *powerDevice) Sync() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, w := range d.pending {
		if _, err := d.durable.WriteAt(w.p, w.off); err != nil {
			return err
		}
	}
	d.pending = nil
	return d.FileDevice.Sync()
}

func (d *powerDevice) powerCut() {
	path := d.durable.Name() + ".cut"
	out, err := os.Create(path)
	if err == nil {
		_, err = d.durable.Seek(0, io.SeekStart)
	}
	if err == nil {
		_, err = io.Copy(out, d.durable)
	}
	if err != nil {
		panic(err)
	}
	keep := d.rng.Perm(len(d.pending))
	for _, i := range keep[:d.rng.Intn(len(keep)+1)] {
		w := d.pending[i]
		p := w.p
		if len(p) > 512 && d.rng.Intn(4) == 0 {
			p = p[:512*(1+d.rng.Intn(len(p)/512))] // torn
		}
		if _, err := out.WriteAt(p, w.off); err != nil {
			panic(err)
		}
	}
	out.Close()
	d.cut = path
}

// A power loss at any write (not a process kill: unsynced writes are lost,
// reordered or torn) leaves a volume that recovers clean with every
// acknowledged operation of two mounts in place. This is what the sync
// points of a transaction must guarantee.
func TestPowerLoss(t *testing.T) {
	runs := 40
	if os.Getenv("KAYOFS_LONG") == "1" {
		runs = 400
	}
	for r := 0; r < runs; r++ {
		seed := int64(r)
		t.Run(fmt.Sprint(seed), func(t *testing.T) { powerLossRun(t, seed) })
	}
}

func powerLossRun(t *testing.T, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	dir := tmpDir(t)
	fd, err := CreateImage(filepath.Join(dir, "lun.img"), 256<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	durable, err := os.Create(filepath.Join(dir, "durable.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer durable.Close()
	if err := durable.Truncate(256 << 20); err != nil {
		t.Fatal(err)
	}
	dev := &powerDevice{FileDevice: fd, durable: durable, rng: rng}
	mustFormat(t, dev, FormatOptions{Slots: 2})
	if err := dev.Sync(); err != nil {
		t.Fatal(err)
	}
	vs := []*Volume{mustMount(t, dev, "A"), mustMount(t, dev, "B")}
	dev.mu.Lock()
	dev.cutAt = dev.n + 1 + rng.Intn(400)
	dev.mu.Unlock()
	want := map[string][]byte{} // acknowledged state: path → content (nil: a directory)
	gone := map[string]bool{}   // acknowledged removals
	// A step counts only when it returned before the cut.
	acked := func() bool {
		dev.mu.Lock()
		defer dev.mu.Unlock()
		return dev.cut == ""
	}
	for i := 0; acked(); i++ {
		v := vs[rng.Intn(2)]
		name := fmt.Sprintf("VM%d", i)
		data := pattern(name, seed, 1+rng.Intn(40<<10))
		batch := rng.Intn(2) == 0 // CreateFiles/RemoveDir instead of call by call
		err := func() error {
			if batch {
				if _, err := v.CreateFiles(name, []NewFile{{Name: "disk", Data: data}}); err != nil || !acked() {
					return err
				}
				want[name], want[name+"/disk"] = nil, data
				if i > 0 && rng.Intn(3) == 0 {
					old := fmt.Sprintf("VM%d", rng.Intn(i))
					if _, ok := want[old]; !ok {
						return nil
					}
					delete(want, old) // in flight: either way
					delete(want, old+"/disk")
					if err := v.RemoveDir(old); err != nil || !acked() {
						return err
					}
					gone[old] = true
				}
				return nil
			}
			if err := v.Mkdir(name); err != nil || !acked() {
				return err
			}
			want[name] = nil
			f, err := v.Create(name + "/disk")
			if err != nil || !acked() {
				return err
			}
			want[name+"/disk"] = []byte{}
			if _, err := f.WriteAt(data, 0); err != nil || !acked() {
				return err
			}
			want[name+"/disk"] = data
			if i > 0 && rng.Intn(3) == 0 {
				old := fmt.Sprintf("VM%d/disk", rng.Intn(i))
				if _, ok := want[old]; !ok {
					return nil
				}
				delete(want, old) // in flight: either way
				if err := v.Remove(old); err != nil || !acked() {
					return err
				}
				gone[old] = true
			}
			return nil
		}()
		if err != nil {
			t.Fatalf("op %d: %v", i, err)
		}
	}
	// The operation running at the cut may land either way; the rest may not.
	for _, v := range vs {
		v.Crash()
	}
	img, err := OpenDevice(dev.cut)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	probs, err := Check(img)
	if err != nil {
		t.Fatalf("check before recovery: %v", err)
	}
	for _, p := range probs {
		t.Errorf("check before recovery (committed journals overlaid): %s", p)
	}
	v, err := Mount(img, "A") // reclaims A's slot; both journals replay
	if err != nil {
		t.Fatalf("mount after power loss: %v", err)
	}
	for p := range gone {
		if _, err := v.Stat(p); !errors.Is(err, ErrNotExist) {
			t.Errorf("acknowledged removal of %s undone (%v)", p, err)
		}
	}
	for p, content := range want {
		fi, err := v.Stat(p)
		if err != nil {
			t.Errorf("acknowledged %s lost: %v", p, err)
			continue
		}
		if content == nil {
			continue
		}
		if fi.Size < int64(len(content)) {
			t.Errorf("%s: size %d, acknowledged %d bytes", p, fi.Size, len(content))
			continue
		}
		f, err := v.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(content))
		if _, err := f.ReadAt(got, 0); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if !bytes.Equal(got, content) {
			t.Errorf("%s: acknowledged data differs", p)
		}
	}
	if err := v.Unmount(); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, img)
}
