package vhd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func fileSum(t testing.TB, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// Children of templates written by this package and by qemu-img: the
// parents stay byte-for-byte unchanged and valid for qemu while the
// children (which qemu's vpc driver cannot read; CheckChain checks
// them) take the writes, and a flattened copy reads the same in qemu.
func TestQemuChildOfTemplates(t *testing.T) {
	t.Parallel()
	qemuTool(t, "qemu-img")
	dir := t.TempDir()
	tdir, vdir := filepath.Join(dir, "templates"), filepath.Join(dir, "vms")
	for _, d := range []string{tdir, vdir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Ours: dynamic, data scattered.
	_, od := createFile(t, filepath.Join(tdir, "ours.vhd"), Options{Type: Dynamic, Size: 20 * mib, BlockSize: 512 * kib})
	pattern(t, od, 11)
	// qemu's: a raw image converted to a dynamic VHD, as guest/template.sh makes.
	raw := make([]byte, 16*mib)
	rand.New(rand.NewSource(12)).Read(raw[3*mib : 7*mib])
	if err := os.WriteFile(filepath.Join(dir, "q.raw"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic", filepath.Join(dir, "q.raw"), filepath.Join(tdir, "qemu.vhd"))

	for i, name := range []string{"ours.vhd", "qemu.vhd"} {
		t.Run(name, func(t *testing.T) {
			ppath := filepath.Join(tdir, name)
			_, pd := openFile(t, ppath)
			base := readAll(t, pd)
			before := fileSum(t, ppath)
			info := infoOf(t, ppath)
			cpath := filepath.Join(vdir, "child-"+name)
			cf, err := os.OpenFile(cpath, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			defer cf.Close()
			c, err := CreateChild(cf, DirOpener(vdir), ChildOptions{ParentPath: `..\templates\` + name, Time: clock})
			if err != nil {
				t.Fatal(err)
			}
			ref := bytes.Clone(base)
			scribble(t, c, ref, int64(20+i), 25)
			c.Close()
			c2, err := OpenChain(cf, fileSize(t, cpath), DirOpener(vdir))
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			if !bytes.Equal(readAll(t, c2), ref) {
				t.Fatal("child does not read as its parent plus its writes")
			}
			if p := CheckChain(cf, fileSize(t, cpath), DirOpener(vdir)); len(p) != 0 {
				t.Fatalf("CheckChain: %s", strings.Join(p, "; "))
			}
			if fileSum(t, ppath) != before {
				t.Fatal("the template's file changed")
			}
			if got := infoOf(t, ppath); got != info {
				t.Fatalf("qemu-img info of the template changed: %+v, was %+v", got, info)
			}
			qemuCheck(t, ppath)
			convertCompare(t, ppath, base[:info.VirtualSize])
			// The flattened copy is a plain dynamic VHD qemu reads.
			if name == "ours.vhd" {
				kpath := filepath.Join(vdir, "copy.vhd")
				kf, err := os.OpenFile(kpath, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
				if err != nil {
					t.Fatal(err)
				}
				defer kf.Close()
				if _, err := Copy(context.Background(), OSFile(kf), c2, Options{Type: Dynamic, Time: clock}); err != nil {
					t.Fatal(err)
				}
				qemuCheck(t, kpath)
				convertCompare(t, kpath, ref)
			}
		})
	}
}
