package vhd

import (
	"context"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// benchTemplate writes a 2 GiB dynamic template at path holding
// dataMiB MiB of random data spread over it (one 2 MiB block in every
// 2 GiB/dataMiB*2 MiB), like an installed OS image.
func benchTemplate(b *testing.B, path string, size, dataMiB int64) {
	b.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	d, err := Create(OSFile(f), Options{Type: Dynamic, Size: size})
	if err != nil {
		b.Fatal(err)
	}
	blocks := dataMiB / 2
	step := d.Size() / blocks / DefaultBlockSize * DefaultBlockSize
	buf := make([]byte, DefaultBlockSize)
	rng := rand.New(rand.NewSource(1))
	for i := int64(0); i < blocks; i++ {
		rng.Read(buf)
		if _, err := d.WriteAt(buf, i*step); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCloneTemplate: making a VM disk from a 2 GiB template (256 MiB
// of data) as a differencing child, as a full copy (Copy), and, as the
// floor of a copy, `qemu-img convert` of the same template to a dynamic
// VHD. The child of a 64 MiB template shows the child's cost does not
// depend on the template's size.
func BenchmarkCloneTemplate(b *testing.B) {
	dir := b.TempDir()
	big, small := filepath.Join(dir, "big.vhd"), filepath.Join(dir, "small.vhd")
	benchTemplate(b, big, 2<<30, 256)
	benchTemplate(b, small, 64<<20, 16)
	out := filepath.Join(dir, "out.vhd")
	child := func(b *testing.B, parent string) {
		for i := 0; i < b.N; i++ {
			f, err := os.OpenFile(out, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
			if err != nil {
				b.Fatal(err)
			}
			d, err := CreateChild(OSFile(f), DirOpener(dir), ChildOptions{ParentPath: parent})
			if err != nil {
				b.Fatal(err)
			}
			d.Close()
			f.Close()
		}
	}
	b.Run("differencing-2GiB", func(b *testing.B) { child(b, "big.vhd") })
	b.Run("differencing-64MiB", func(b *testing.B) { child(b, "small.vhd") })
	b.Run("copy-2GiB", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			pf, err := os.Open(big)
			if err != nil {
				b.Fatal(err)
			}
			st, _ := pf.Stat()
			src, err := Open(pf, st.Size())
			if err != nil {
				b.Fatal(err)
			}
			f, err := os.OpenFile(out, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := Copy(context.Background(), OSFile(f), src, Options{Type: Dynamic}); err != nil {
				b.Fatal(err)
			}
			f.Close()
			pf.Close()
		}
	})
	b.Run("qemu-img-convert-2GiB", func(b *testing.B) {
		qemu, err := exec.LookPath("qemu-img")
		if err != nil {
			b.Skip("qemu-img not found (Debian package qemu-utils)")
		}
		for i := 0; i < b.N; i++ {
			if out, err := exec.Command(qemu, "convert", "-f", "vpc", "-O", "vpc", "-o", "subformat=dynamic", big, out).CombinedOutput(); err != nil {
				b.Fatalf("qemu-img convert: %v\n%s", err, out)
			}
		}
	})
}
