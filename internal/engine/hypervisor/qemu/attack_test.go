package qemu

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kayo-labs/terraform-provider-kayo/internal/localuser"
)

// TestNBDLocalUser: nobody cannot reach a VM's disk on the agent's NBD
// socket (qemu-io's write fails, the disk is unchanged); the agent's own
// user can, through the same command.
func TestNBDLocalUser(t *testing.T) {
	qio, err := exec.LookPath("qemu-io")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("qemu-io not found under CI=true (.ci/run installs qemu-utils): %v", err)
		}
		t.Skipf("qemu-io not found, skipping (apt-get install qemu-utils): %v", err)
	}
	if _, err := localuser.Command("true"); err != nil {
		localuser.SkipOrFail(t, err)
	}
	dir := t.TempDir()
	if err := localuser.Reachable(dir); err != nil {
		t.Fatal(err)
	}
	disk, err := os.OpenFile(filepath.Join(dir, "web01.raw"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	if err := disk.Truncate(1 << 20); err != nil {
		t.Fatal(err)
	}
	srv, err := ListenNBD(filepath.Join(dir, "qemu", "Y-21", "nbd.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.Logf = t.Logf
	x := srv.Add("WEB01", rawDisk{File: disk, size: 1 << 20})
	url := srv.URL("WEB01")
	cmd, _ := localuser.Command(qio, "-f", "raw", url, "-c", "write -P 0x66 0 32768")
	out, err := cmd.CombinedOutput()
	if err == nil && !strings.Contains(string(out), "rror") {
		t.Fatalf("nobody's qemu-io write to %s: %s", url, out)
	}
	t.Logf("nobody's qemu-io: %v: %s", err, strings.TrimSpace(string(out)))
	if n := x.Writes.Load(); n != 0 {
		t.Fatalf("%d writes reached the export", n)
	}
	b := make([]byte, 32768)
	if _, err := disk.ReadAt(b, 0); err != nil || !bytes.Equal(b, make([]byte, len(b))) {
		t.Fatalf("the disk changed: %v", err)
	}
	if out, err := exec.Command(qio, "-f", "raw", url, "-c", "write -P 0x66 0 32768").CombinedOutput(); err != nil || x.Writes.Load() == 0 {
		t.Fatalf("the agent's user writing through %s: %v: %s", url, err, out)
	}
}

// rawDisk serves an *os.File as an NBD disk (raw).
type rawDisk struct {
	*os.File
	size int64
}

func (d rawDisk) Size() int64  { return d.size }
func (d rawDisk) Flush() error { return d.Sync() }
