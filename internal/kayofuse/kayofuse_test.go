package kayofuse

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

// skipOrFail skips a test that cannot mount FUSE here, except under
// CI=true, where it must (as qemutest.SkipOrFail does for QEMU).
func skipOrFail(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("FUSE tests cannot run under CI=true: %v (CI runs as root with /dev/fuse)", err)
	}
	t.Skipf("FUSE is not available, skipping: %v", err)
}

// testVolume is a formatted image mounted by node Y-21-2k8x64.
type testVolume struct {
	image string
	fd    *kayofs.FileDevice
	v     *kayofs.Volume
}

func newVolume(t testing.TB, size int64) *testVolume {
	t.Helper()
	if err := Available(); err != nil {
		skipOrFail(t, err)
	}
	image := filepath.Join(t.TempDir(), "lun0.img")
	fd, err := kayofs.CreateImage(image, size)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kayofs.Format(fd, kayofs.FormatOptions{BlockSize: 4096, Slots: 4, Label: "VMSTORE"}); err != nil {
		t.Fatal(err)
	}
	v, err := kayofs.Mount(fd, "Y-21-2k8x64")
	if err != nil {
		t.Fatal(err)
	}
	tv := &testVolume{image: image, fd: fd, v: v}
	t.Cleanup(func() {
		_ = tv.v.Unmount()
		_ = fd.Close()
	})
	return tv
}

// mount serves tv at a fresh directory; the mount goes at the test's end.
func (tv *testVolume) mount(t testing.TB, o Options) *Server {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	o.Logf = t.Logf
	s, err := Mount(tv.v, dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Unmount(ctx); err != nil && !errors.Is(err, kayofs.ErrUnmounted) {
			t.Errorf("unmount: %v", err)
		}
	})
	return s
}

// run runs a tool and returns its standard output; it must succeed.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// runFails runs a tool that must fail with want in its error output.
func runFails(t testing.TB, want, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), want) {
		t.Errorf("%s %s: err %v, output %q; want a failure saying %q", name, strings.Join(args, " "), err, out, want)
	}
}

// sizeMiB is the size of the big file the tests copy: 256 MiB, or
// $KAYOFUSE_TEST_MIB.
func sizeMiB(t testing.TB) int64 {
	if s := os.Getenv("KAYOFUSE_TEST_MIB"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 8 {
			t.Fatalf("KAYOFUSE_TEST_MIB=%q: want a whole number of MiB, at least 8", s)
		}
		return n
	}
	return 256
}

// writeSparseish writes a file of mib MiB: random data in the first half,
// then 1 MiB of data every 4 MiB with holes between, the way a VHD that
// was used for a while looks.
func writeSparseish(t testing.TB, p string, mib int64) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := rand.New(rand.NewChaCha8([32]byte{1, 2, 3}))
	buf := make([]byte, 1<<20)
	for i := int64(0); i < mib; i++ {
		if i >= mib/2 && i%4 != 0 {
			continue
		}
		for j := 0; j < len(buf); j += 8 {
			v := r.Uint64()
			for k := range 8 {
				buf[j+k] = byte(v >> (8 * k))
			}
		}
		if _, err := f.WriteAt(buf, i<<20); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(mib << 20); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
