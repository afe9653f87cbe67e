package kayofs

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// TestDirectDeviceUnaligned: reads and writes at any offset and length
// through a direct-I/O device land exactly where a buffered device would
// put them (partial blocks by read-modify-write).
func TestDirectDeviceUnaligned(t *testing.T) {
	img := filepath.Join(tmpDir(t), "d.img")
	d, err := CreateImage(img, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	requireDirectIO(t, img)
	dd, err := OpenDeviceDirect(img)
	if err != nil {
		t.Fatal(err)
	}
	defer dd.Close()
	want := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200; i++ {
		off := r.IntN(len(want) - 20000)
		p := make([]byte, 1+r.IntN(20000))
		for j := range p {
			p[j] = byte(r.Uint32())
		}
		if n, err := dd.WriteAt(p, int64(off)); err != nil || n != len(p) {
			t.Fatalf("write %d at %d: %d, %v", len(p), off, n, err)
		}
		copy(want[off:], p)
		q := make([]byte, 1+r.IntN(20000))
		qo := r.IntN(len(want) - len(q))
		if _, err := dd.ReadAt(q, int64(qo)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(q, want[qo:qo+len(q)]) {
			t.Fatalf("direct read %d at %d differs", len(q), qo)
		}
	}
	got, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("image differs from the writes")
	}
}

// TestDiskLeasesRefuseCachedDevice: on-disk leases refuse a device read
// through the page cache, and a version-1 volume (no lease area).
func TestDiskLeasesRefuseCachedDevice(t *testing.T) {
	img, dev := newLeaseImage(t)
	if _, err := Mount(dev, "A", MountOptions{Locks: NewDiskLeases(testLeaseOpts(t.Logf))}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("mount of a cached device with on-disk leases: %v, want ErrInvalid", err)
	}
	sb, err := ReadSuperblock(dev)
	if err != nil {
		t.Fatal(err)
	}
	sb.Version = 1
	if err := writeSuperblocks(dev, sb); err != nil {
		t.Fatal(err)
	}
	dd, err := OpenDeviceDirect(img)
	if err != nil {
		t.Fatal(err)
	}
	defer dd.Close()
	_, err = Mount(dd, "A", MountOptions{Locks: NewDiskLeases(testLeaseOpts(t.Logf))})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("mount of a version-1 volume with on-disk leases: %v, want ErrInvalid", err)
	}
}
