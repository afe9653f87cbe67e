package qemu

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// testGuest builds the test guest (guest/build.sh) or skips when QEMU or
// the guest's packages are missing (fails under CI=true).
func testGuest(t testing.TB) (string, Guest) {
	t.Helper()
	skip := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf(format, args...)
		}
		t.Skipf(format, args...)
	}
	if runtime.GOOS != "linux" {
		skip("qemu driver tests need Linux")
	}
	bin, err := Binary()
	if err != nil {
		skip("QEMU is not installed (.ci/run installs qemu-system-x86): %v", err)
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..", "..")
	out := filepath.Join(root, "guest", "out")
	if b, err := exec.Command(filepath.Join(root, "guest", "build.sh"), out).CombinedOutput(); err != nil {
		skip("building the test guest failed (needs linux-image-amd64, busybox-static, cpio): %v: %s", err, b)
	}
	g, err := FindGuest(out)
	if err != nil {
		t.Fatal(err)
	}
	return bin, g
}

func TestRawMigrationCounterContinues(t *testing.T) {
	bin, g := testGuest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	res, err := RawMigration(ctx, bin, g, 128, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("raw QMP migration, 128 MiB: total %d ms, downtime %d ms, wall %d ms, resume %d ms", res.TotalMs, res.DowntimeMs, res.WallMs, res.ResumeMs)
}
