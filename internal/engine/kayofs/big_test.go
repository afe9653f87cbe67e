package kayofs

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// allocatedBytes is what the file system really stored for a sparse file.
func allocatedBytes(t testing.TB, path string) int64 {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// bigImage creates a sparse image of size on tmpfs when possible; ext4
// refuses files of 16 TiB and more, so skip clearly when the file system
// does.
func bigImage(t testing.TB, size int64) *FileDevice {
	dir := tmpDir(t)
	d, err := CreateImage(filepath.Join(dir, "big.img"), size)
	if err != nil {
		if errors.Is(err, syscall.EFBIG) || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSPC) {
			t.Skipf("the file system at %s cannot hold a sparse file of %d bytes (%v); run where /dev/shm is tmpfs", dir, size, err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(); os.Remove(d.Path()) })
	return d
}

func TestFormat16TiBSparse(t *testing.T) {
	const size = 16<<40 - 1<<20
	dev := bigImage(t, size)
	start := time.Now()
	sb := mustFormat(t, dev, FormatOptions{Slots: 16, Label: "VMSTORE"})
	took := time.Since(start)
	written := allocatedBytes(t, dev.Path())
	t.Logf("16 TiB - 1 MiB, 16 slots: format took %v, %d bytes allocated in the image; %d groups of %d blocks",
		took, written, sb.AGCount, sb.AGDataBlocks)
	if written > 4<<20 {
		t.Fatalf("format wrote %d bytes; want at most a few MiB", written)
	}
	v := mustMount(t, dev, "Y-21-2k8x64")
	f, err := v.Create("big.vhd")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Allocate(40 << 30); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("footer"), 40<<30-512); err != nil {
		t.Fatal(err)
	}
	st, err := v.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.FreeBytes > st.DataBytes-40<<30 || st.TotalBytes > size {
		t.Fatalf("stats %+v", st)
	}
	v.Unmount()
	mustCheck(t, dev)
	if w := allocatedBytes(t, dev.Path()); w > 16<<20 {
		t.Fatalf("after a 40 GiB unwritten allocation the image holds %d bytes", w)
	}
}
