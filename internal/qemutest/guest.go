package qemutest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor/qemu"
)

var buildMu sync.Mutex

// RepoRoot is the repository's root, found from this source file.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Prepare finds QEMU and builds the test guest (guest/build.sh into
// guest/out under root, reused while up to date). The error says what is
// missing; tests skip on it, or fail when CI=true.
func Prepare(root string) (bin string, g qemu.Guest, err error) {
	if runtime.GOOS != "linux" {
		return "", qemu.Guest{}, fmt.Errorf("the qemu driver needs Linux")
	}
	if bin, err = qemu.Binary(); err != nil {
		return "", qemu.Guest{}, err
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	out := filepath.Join(root, "guest", "out")
	if b, err := exec.Command(filepath.Join(root, "guest", "build.sh"), out).CombinedOutput(); err != nil {
		return "", qemu.Guest{}, fmt.Errorf("building the test guest (needs linux-image-amd64, busybox-static, cpio): %v: %s", err, b)
	}
	g, err = qemu.FindGuest(out)
	return bin, g, err
}

// SkipOrFail is what tests do when Prepare fails: skip with the reason,
// except under CI=true, where QEMU must be there.
func SkipOrFail(t interface {
	Helper()
	Skipf(string, ...any)
	Fatalf(string, ...any)
}, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("QEMU tests cannot run under CI=true: %v (.ci/run installs qemu-system-x86, linux-image-amd64, busybox-static, cpio)", err)
	}
	t.Skipf("QEMU is not available, skipping: %v (apt-get install qemu-system-x86 linux-image-amd64 busybox-static cpio)", err)
}
