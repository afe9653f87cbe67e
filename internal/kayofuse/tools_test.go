package kayofuse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

// The mount through the real tools: ls, mkdir, cp of a big sparse-ish file
// in and out, cmp, stat, dd, mv, rm, rmdir, df; and the errors they meet.
func TestToolsThroughMount(t *testing.T) {
	mib := sizeMiB(t)
	tv := newVolume(t, 2*mib<<20+1<<30)
	s := tv.mount(t, Options{})
	mnt := s.Dir()
	host := t.TempDir()
	src := filepath.Join(host, "src.bin")
	writeSparseish(t, src, mib)

	df := run(t, "df", "-B1", "--output=source,fstype,size,avail", mnt)
	if !strings.Contains(df, "kayofs:VMSTORE") || !strings.Contains(df, "fuse.kayofs") {
		t.Errorf("df names neither the volume nor the type:\n%s", df)
	}
	avail0 := dfAvail(t, mnt)

	run(t, "mkdir", filepath.Join(mnt, "WEB01"))
	if ls := run(t, "ls", "-l", mnt); !strings.Contains(ls, "WEB01") || !strings.HasPrefix(strings.Split(ls, "\n")[1], "d") {
		t.Errorf("ls -l after mkdir:\n%s", ls)
	}
	runFails(t, "File exists", "mkdir", filepath.Join(mnt, "WEB01"))

	in := filepath.Join(mnt, "WEB01", "big.bin")
	start := time.Now()
	run(t, "cp", src, in)
	t.Logf("cp %d MiB in: %s", mib, time.Since(start).Round(time.Millisecond))
	if got := strings.TrimSpace(run(t, "stat", "-c", "%s %F", in)); got != strconv.FormatInt(mib<<20, 10)+" regular file" {
		t.Errorf("stat: %q", got)
	}
	run(t, "cmp", src, in)
	out := filepath.Join(host, "out.bin")
	start = time.Now()
	run(t, "cp", in, out)
	t.Logf("cp %d MiB out: %s", mib, time.Since(start).Round(time.Millisecond))
	run(t, "cmp", src, out)
	if used := avail0 - dfAvail(t, mnt); used < mib<<20*5/8 || used > mib<<20+64<<20 {
		t.Errorf("df: %d bytes used by a %d MiB file with 3/8 holes", used, mib)
	}

	// dd: overwrite inside, append past the end, a short file with fsync;
	// the same on the host, then cmp.
	hostDD := filepath.Join(host, "dd.bin")
	for _, dst := range []string{filepath.Join(mnt, "WEB01", "dd.bin"), hostDD} {
		run(t, "dd", "if="+src, "of="+dst, "bs=64k", "count=40", "status=none")
		run(t, "dd", "if=/dev/zero", "of="+dst, "bs=1000", "count=7", "seek=333", "conv=notrunc", "status=none")
		run(t, "dd", "if="+src, "of="+dst, "bs=4096", "skip=3", "count=5", "oflag=append", "conv=notrunc,fsync", "status=none")
	}
	run(t, "cmp", hostDD, filepath.Join(mnt, "WEB01", "dd.bin"))

	// what Kayo FS does not keep: refused, or (times) accepted
	run(t, "touch", filepath.Join(mnt, "WEB01", "dd.bin"), filepath.Join(mnt, "WEB01", "new"))
	run(t, "chmod", "644", filepath.Join(mnt, "WEB01", "new"))
	runFails(t, "Operation not permitted", "chmod", "600", filepath.Join(mnt, "WEB01", "new"))
	runFails(t, "Operation not supported", "ln", "-s", "new", filepath.Join(mnt, "WEB01", "link"))

	run(t, "mv", in, filepath.Join(mnt, "moved.bin"))
	if ls := run(t, "ls", filepath.Join(mnt, "WEB01")); strings.Contains(ls, "big.bin") {
		t.Errorf("big.bin still listed after mv:\n%s", ls)
	}
	run(t, "cmp", src, filepath.Join(mnt, "moved.bin"))
	runFails(t, "Directory not empty", "rmdir", filepath.Join(mnt, "WEB01"))
	runFails(t, "No such file", "cat", filepath.Join(mnt, "nothing"))
	run(t, "rm", filepath.Join(mnt, "moved.bin"))
	run(t, "rm", "-r", filepath.Join(mnt, "WEB01"))
	if ls := run(t, "ls", "-a", mnt); ls != ".\n..\n" {
		t.Errorf("ls after rm: %q", ls)
	}
	if freed := dfAvail(t, mnt); freed != avail0 {
		t.Errorf("df after rm: %d bytes available, %d before the copy", freed, avail0)
	}
}

func dfAvail(t testing.TB, dir string) int64 {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(run(t, "df", "-B1", "--output=avail", dir)), "\n")
	n, err := strconv.ParseInt(strings.TrimSpace(lines[len(lines)-1]), 10, 64)
	if err != nil {
		t.Fatalf("df: %v", err)
	}
	return n
}

// What one node writes through the mount, another node's own kayofs mount
// reads; what that node writes, the mount lists; and the volume checks
// clean after both are gone.
func TestMountSharesVolumeWithOtherNode(t *testing.T) {
	tv := newVolume(t, 256<<20)
	s := tv.mount(t, Options{})
	data := bytes.Repeat([]byte("kayo fuse "), 300_000)
	run(t, "mkdir", filepath.Join(s.Dir(), "ISO"))
	if err := os.WriteFile(filepath.Join(s.Dir(), "ISO", "a.iso"), data, 0o644); err != nil {
		t.Fatal(err)
	}

	fd2, err := kayofs.OpenDevice(tv.image)
	if err != nil {
		t.Fatal(err)
	}
	defer fd2.Close()
	v2, err := kayofs.Mount(fd2, "Y-22-2k8x64")
	if err != nil {
		t.Fatal(err)
	}
	f, err := v2.Open("ISO/a.iso")
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data)+10)
	n, _ := f.ReadAt(got, 0)
	if !bytes.Equal(got[:n], data) {
		t.Errorf("the other node reads %d bytes, not the %d written through the mount", n, len(data))
	}
	g, err := v2.Create("ISO/b.txt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.WriteAt([]byte("from Y-22\n"), 0); err != nil {
		t.Fatal(err)
	}
	if got := run(t, "cat", filepath.Join(s.Dir(), "ISO", "b.txt")); got != "from Y-22\n" {
		t.Errorf("the mount reads %q from the other node's file", got)
	}
	if err := v2.Unmount(); err != nil {
		t.Fatal(err)
	}
	if err := s.Unmount(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := tv.v.Unmount(); err != nil {
		t.Fatal(err)
	}
	probs, err := kayofs.Check(tv.fd)
	if err != nil || len(probs) > 0 {
		t.Errorf("check after the mount: %v %v", err, probs)
	}
}

// A mount whose kayofs mount is lost fails every request with EIO — also
// the close of a file whose last writes were still gathered — and never
// reports a write as done.
func TestLostMountIsEIO(t *testing.T) {
	tv := newVolume(t, 256<<20)
	s := tv.mount(t, Options{})
	p := filepath.Join(s.Dir(), "a.bin")
	if err := os.WriteFile(p, []byte("before"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err) // gathered, not yet on the volume
	}
	// The node's mount is gone, as after a lost lease: between requests
	// (kayofs's Crash closes the lock file under operations in flight).
	s.fsys.gate.Lock()
	tv.v.Crash()
	s.fsys.gate.Unlock()

	if err := f.Close(); err == nil || !strings.Contains(err.Error(), "input/output error") {
		t.Errorf("close of a file with gathered writes after the mount was lost: %v, want EIO", err)
	}
	runFails(t, "Input/output error", "ls", s.Dir())
	runFails(t, "Input/output error", "cat", p)
	hostFile := filepath.Join(t.TempDir(), "x")
	if err := os.WriteFile(hostFile, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	runFails(t, "Input/output error", "cp", hostFile, filepath.Join(s.Dir(), "new"))
	runFails(t, "Input/output error", "mkdir", filepath.Join(s.Dir(), "d"))
	runFails(t, "Input/output error", "df", s.Dir())
}

// A busy mount point (a file open there) is detached lazily and the
// unmount completes when the file closes; its gathered writes land.
func TestUnmountBusy(t *testing.T) {
	tv := newVolume(t, 256<<20)
	s := tv.mount(t, Options{})
	f, err := os.Create(filepath.Join(s.Dir(), "open.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("still open")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Unmount(t.Context()) }()
	select {
	case err := <-done:
		t.Fatalf("unmount returned (%v) while a file was open", err)
	case <-time.After(500 * time.Millisecond):
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "open.bin")); err == nil {
		t.Error("the busy mount is still in the tree after Unmount detached it")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("unmount did not finish after the file closed")
	}
	g, err := tv.v.Open("open.bin")
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 32)
	n, _ := g.ReadAt(b, 0)
	if string(b[:n]) != "still open" {
		t.Errorf("after the lazy unmount the file holds %q", b[:n])
	}
}

func TestMountpointRefused(t *testing.T) {
	tv := newVolume(t, 64<<20)
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ dir, want string }{
		{filepath.Join(dir, "missing"), "does not exist"},
		{file, "is not a directory"},
		{dir, `is not empty (it holds "file")`},
	} {
		_, err := Mount(tv.v, c.dir, Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Mount at %s: %v, want %q", c.dir, err, c.want)
		}
	}
}

// Kayo FS gives a removed directory's inode number to the next one
// created, while an open descriptor still holds the removed one: the new
// directory works.
func TestReusedInodeNumberIsNewNode(t *testing.T) {
	tv := newVolume(t, 64<<20)
	s := tv.mount(t, Options{})
	d, e := filepath.Join(s.Dir(), "d"), filepath.Join(s.Dir(), "e")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	id, _ := tv.v.Stat("d")
	if err := os.Remove(d); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(e, 0o755); err != nil {
		t.Fatal(err)
	}
	ie, _ := tv.v.Stat("e")
	if id.Ino != ie.Ino {
		t.Fatalf("kayofs gave e inode %d, not d's %d: the test needs the reuse", ie.Ino, id.Ino)
	}
	if err := os.WriteFile(filepath.Join(e, "x"), []byte("xyz"), 0o644); err != nil {
		t.Errorf("a file in the new directory: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(e, "x")); err != nil || string(got) != "xyz" {
		t.Errorf("e/x reads %q, %v", got, err)
	}
	if ls := run(t, "ls", s.Dir()); ls != "e\n" {
		t.Errorf("ls: %q", ls)
	}
}

// Giving up on a busy mount (a second signal) lands the gathered writes and
// fails every later request, so the volume can be detached under it.
func TestUnmountBusyGivenUp(t *testing.T) {
	tv := newVolume(t, 256<<20)
	s := tv.mount(t, Options{})
	f, err := os.Create(filepath.Join(s.Dir(), "open.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("gathered")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if err := s.Unmount(ctx); !errors.Is(err, ErrBusy) {
		t.Fatalf("Unmount of a busy mount given up: %v, want ErrBusy", err)
	}
	if _, err := f.Write([]byte("more")); err == nil || !strings.Contains(err.Error(), "input/output error") {
		t.Errorf("a write after the mount was given up: %v, want EIO", err)
	}
	if err := tv.v.Detach(); err != nil {
		t.Fatal(err)
	}
	fd2, err := kayofs.OpenDevice(tv.image)
	if err != nil {
		t.Fatal(err)
	}
	defer fd2.Close()
	v2, err := kayofs.Mount(fd2, "Y-22-2k8x64")
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Unmount()
	g, err := v2.Open("open.bin")
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 32)
	n, _ := g.ReadAt(b, 0)
	if string(b[:n]) != "gathered" {
		t.Errorf("the volume holds %q, not the gathered write", b[:n])
	}
}

// Writers of several files at once, each reading its file back through a
// second descriptor while the first is still open: what a write returned
// is read (gathered writes belong to the file, not to one descriptor).
func TestParallelWritersReadTheirWrites(t *testing.T) {
	tv := newVolume(t, 256<<20)
	s := tv.mount(t, Options{})
	errs := make(chan error, 4)
	for i := range 4 {
		go func() {
			errs <- func() error {
				p := filepath.Join(s.Dir(), "f"+strconv.Itoa(i))
				w, err := os.Create(p)
				if err != nil {
					return err
				}
				defer w.Close()
				r, err := os.OpenFile(p, os.O_RDONLY|syscall.O_DIRECT, 0) // past the page cache
				if err != nil {
					return err
				}
				defer r.Close()
				chunk := bytes.Repeat([]byte{byte('a' + i)}, 64<<10)
				got := make([]byte, len(chunk))
				for k := range 64 {
					chunk[0] = byte(k)
					if _, err := w.Write(chunk); err != nil {
						return err
					}
					if _, err := r.ReadAt(got, int64(k)*int64(len(chunk))); err != nil {
						return fmt.Errorf("%s: reading back chunk %d: %w", p, k, err)
					}
					if !bytes.Equal(got, chunk) {
						return fmt.Errorf("%s: chunk %d reads back wrong", p, k)
					}
				}
				return w.Close()
			}()
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
