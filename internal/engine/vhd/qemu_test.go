package vhd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Interoperability with qemu-img (Debian package qemu-utils). Without it
// the tests skip, except under CI=true where they fail: the CI script
// must install qemu-utils.

func qemuTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		msg := fmt.Sprintf("%s not found: install Debian's qemu-utils (apt-get install -y qemu-utils) to run the VHD interop tests", name)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(qemuTool(t, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

type qemuInfo struct {
	Format      string `json:"format"`
	VirtualSize int64  `json:"virtual-size"`
	ClusterSize int64  `json:"cluster-size"`
}

func infoOf(t *testing.T, path string) qemuInfo {
	t.Helper()
	var qi qemuInfo
	out := run(t, "qemu-img", "info", "-f", "vpc", "--output=json", path)
	if err := json.Unmarshal([]byte(out), &qi); err != nil {
		t.Fatalf("qemu-img info output %q: %v", out, err)
	}
	return qi
}

// qemuCheck runs `qemu-img check`. qemu's vpc driver implements no
// check, so qemu-img reports "This image format does not support
// checks" (exit 63); that is accepted, anything else that is not a
// clean report fails. The byte-for-byte convert comparisons below are
// the real test of qemu's reading.
func qemuCheck(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command(qemuTool(t, "qemu-img"), "check", "-f", "vpc", path).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil && strings.Contains(string(out), "No errors"):
	case errors.As(err, &ee) && ee.ExitCode() == 63 && strings.Contains(string(out), "does not support checks"):
	default:
		t.Fatalf("qemu-img check %s: %v\n%s", path, err, out)
	}
	return string(out)
}

func createFile(t *testing.T, path string, o Options) (*os.File, *Disk) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, mustCreate(t, f, o)
}

func openFile(t *testing.T, path string) (*os.File, *Disk) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, _ := f.Stat()
	d, err := Open(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	return f, d
}

func fileSize(t *testing.T, path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// qemu must report the size Hyper-V would (the footer's current size)
// for every size class, with creator "kayo".
func TestQemuInfoSizes(t *testing.T) {
	t.Parallel()
	qemuTool(t, "qemu-img")
	dir := t.TempDir()
	for i, tc := range []Options{
		{Type: Dynamic, Size: 3 * mib},
		{Type: Dynamic, Size: 100*mib + 3},
		{Type: Dynamic, Size: 40 * gib},
		{Type: Dynamic, Size: 127 * gib},
		{Type: Dynamic, Size: 500*gib + 512},
		{Type: Dynamic, Size: 2040 * gib},
		{Type: Dynamic, Size: 10 * mib, BlockSize: 512 * kib},
		{Type: Fixed, Size: 10 * mib},
		{Type: Fixed, Size: 40 * gib},
		{Type: Fixed, Size: 2040 * gib},
	} {
		t.Run(fmt.Sprintf("%v-%d", tc.Type, tc.Size), func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("d%d.vhd", i))
			f, d := createFile(t, path, tc)
			qi := infoOf(t, path)
			if qi.Format != "vpc" || qi.VirtualSize != d.Size() {
				t.Errorf("qemu-img info: %+v, want vpc of %d bytes", qi, d.Size())
			}
			if tc.Type == Dynamic && qi.ClusterSize != d.BlockSize() {
				t.Errorf("cluster size %d, want %d", qi.ClusterSize, d.BlockSize())
			}
			qemuCheck(t, path)
			assertClean(t, f, fileSize(t, path))
		})
	}
}

// RoundSize agrees with the size qemu-img gives the same request.
func TestQemuCreateSizeAgrees(t *testing.T) {
	t.Parallel()
	qemuTool(t, "qemu-img")
	dir := t.TempDir()
	for _, n := range []int64{3 * mib, 10 * mib, 100 * mib, gib, 40 * gib, 127 * gib} {
		path := filepath.Join(dir, "q.vhd")
		run(t, "qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=dynamic", path, fmt.Sprint(n))
		want, _ := RoundSize(n)
		if qi := infoOf(t, path); qi.VirtualSize != want {
			t.Errorf("qemu-img create %d: virtual size %d, RoundSize %d", n, qi.VirtualSize, want)
		}
		f, d := openFile(t, path)
		if d.Size() != want {
			t.Errorf("Open of qemu's %d-byte disk: Size %d, want %d", n, d.Size(), want)
		}
		assertClean(t, f, fileSize(t, path))
	}
}

// pattern writes scattered random extents (and both ends) through d and
// returns the expected raw contents.
func pattern(t *testing.T, d *Disk, seed int64) []byte {
	rng := rand.New(rand.NewSource(seed))
	ref := make([]byte, d.Size())
	put := func(off int64, p []byte) {
		if _, err := d.WriteAt(p, off); err != nil {
			t.Fatal(err)
		}
		copy(ref[off:], p)
	}
	for i := 0; i < 15; i++ {
		p := make([]byte, rng.Int63n(300*kib)+1)
		rng.Read(p)
		put(rng.Int63n(d.Size()-int64(len(p))), p)
	}
	put(0, []byte("first bytes"))
	put(d.Size()-10, []byte("last bytes"))
	return ref
}

func convertCompare(t *testing.T, path string, want []byte) {
	t.Helper()
	raw := path + ".raw"
	run(t, "qemu-img", "convert", "-f", "vpc", "-O", "raw", path, raw)
	got, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("qemu converted %d bytes, want %d", len(got), len(want))
	}
	if !bytes.Equal(got, want) {
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("qemu's raw differs first at byte %d", i)
			}
		}
	}
}

// Data written by this package reads back identically through qemu.
func TestQemuConvertOurImages(t *testing.T) {
	t.Parallel()
	qemuTool(t, "qemu-img")
	dir := t.TempDir()
	for i, tc := range []struct {
		o    Options
		grow int64
	}{
		{o: Options{Type: Dynamic, Size: 24 * mib}},
		{o: Options{Type: Dynamic, Size: 9*mib + 77, BlockSize: 64 * kib}},
		{o: Options{Type: Fixed, Size: 8 * mib}},
		{o: Options{Type: Fixed, Size: 4 * mib}, grow: 9 * mib},
		{o: Options{Type: Dynamic, Size: 4 * mib, BlockSize: 64 * kib}, grow: 24 * mib}, // relocates the BAT
	} {
		t.Run(fmt.Sprintf("%v-%d-grow%d", tc.o.Type, tc.o.Size, tc.grow), func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("p%d.vhd", i))
			f, d := createFile(t, path, tc.o)
			want := pattern(t, d, int64(i))
			if tc.grow > 0 {
				if err := d.Grow(tc.grow); err != nil {
					t.Fatal(err)
				}
				want = append(want, make([]byte, d.Size()-int64(len(want)))...)
				copy(want[d.Size()-5:], "grown")
				if _, err := d.WriteAt([]byte("grown"), d.Size()-5); err != nil {
					t.Fatal(err)
				}
			}
			if qi := infoOf(t, path); qi.VirtualSize != d.Size() {
				t.Fatalf("virtual size %d, want %d", qi.VirtualSize, d.Size())
			}
			qemuCheck(t, path)
			convertCompare(t, path, want)
			assertClean(t, f, fileSize(t, path))
		})
	}
}

// Images qemu writes (its creator "qemu", and "qem2" with force_size)
// read back identically here, and stay consistent when this package
// writes into them.
func TestQemuImagesReadBack(t *testing.T) {
	t.Parallel()
	qemuTool(t, "qemu-img")
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(1))
	src := make([]byte, 13*mib+512)
	for i := 0; i < 12; i++ {
		off := rng.Int63n(int64(len(src)) - 200*kib)
		rng.Read(src[off : off+rng.Int63n(200*kib)])
	}
	rawPath := filepath.Join(dir, "src.raw")
	if err := os.WriteFile(rawPath, src, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, opts := range []string{"subformat=dynamic", "subformat=fixed", "subformat=dynamic,force_size=on", "subformat=fixed,force_size=on"} {
		t.Run(opts, func(t *testing.T) {
			path := filepath.Join(dir, strings.NewReplacer("=", "-", ",", "_").Replace(opts)+".vhd")
			run(t, "qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", opts, rawPath, path)
			f, d := openFile(t, path)
			if qi := infoOf(t, path); qi.VirtualSize != d.Size() {
				t.Fatalf("qemu says %d bytes, Open says %d", qi.VirtualSize, d.Size())
			}
			assertClean(t, f, fileSize(t, path))
			got := make([]byte, d.Size())
			if _, err := d.ReadAt(got, 0); err != nil {
				t.Fatal(err)
			}
			want := append(bytes.Clone(src), make([]byte, d.Size()-int64(len(src)))...)
			if !bytes.Equal(got, want) {
				t.Fatal("contents differ from the raw source")
			}
			// Write into qemu's image (new blocks and existing ones).
			for _, off := range []int64{0, 5*mib + 3, d.Size() - 1000} {
				p := bytes.Repeat([]byte{0xC3}, 1000)
				if _, err := d.WriteAt(p, off); err != nil {
					t.Fatal(err)
				}
				copy(want[off:], p)
			}
			assertClean(t, f, d.FileSize())
			convertCompare(t, path, want)
		})
	}
}

// qemu writing into an image this package created leaves it consistent.
func TestQemuWritesOurImage(t *testing.T) {
	t.Parallel()
	qemuTool(t, "qemu-io")
	path := filepath.Join(t.TempDir(), "w.vhd")
	f, d := createFile(t, path, Options{Type: Dynamic, Size: 16 * mib})
	if _, err := d.WriteAt([]byte("ours"), mib); err != nil {
		t.Fatal(err)
	}
	run(t, "qemu-io", "-f", "vpc", "-c", "write -P 0x5a 3M 1M", "-c", "write -P 0x6b 14680064 4096", path)
	f2, d2 := openFile(t, path)
	assertClean(t, f2, fileSize(t, path))
	p := make([]byte, mib)
	for _, c := range []struct {
		off  int64
		want byte
	}{{3 * mib, 0x5a}, {14 * mib, 0x6b}} {
		if _, err := d2.ReadAt(p[:4096], c.off); err != nil || p[0] != c.want || p[4095] != c.want {
			t.Errorf("at %d read %#x, want %#x (%v)", c.off, p[0], c.want, err)
		}
	}
	if _, err := d2.ReadAt(p[:4], mib); err != nil || string(p[:4]) != "ours" {
		t.Errorf("our data lost: %q", p[:4])
	}
	_ = f
}
