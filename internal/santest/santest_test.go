package santest

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kayo-labs/terraform-provider-kayo/internal/qemutest"
)

// qemuIO runs qemu-io (qemu-utils) as host against the server: QEMU's own
// NBD client, the one the torture guests use.
func qemuIO(t *testing.T, s *Server, host string, cmds ...string) (string, error) {
	t.Helper()
	args := []string{"-f", "raw"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	args = append(args, fmt.Sprintf("nbd://127.0.0.1:%d/%s", s.NBDPort(), host))
	out, err := exec.Command("qemu-io", args...).CombinedOutput()
	return string(out), err
}

func TestFenceRefusesLaterWritesOfThatHostOnly(t *testing.T) {
	if _, err := exec.LookPath("qemu-io"); err != nil {
		qemutest.SkipOrFail(t, fmt.Errorf("qemu-io (qemu-utils): %w", err))
	}
	img := filepath.Join(t.TempDir(), "lun.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Start(img)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	if out, err := qemuIO(t, s, "G1", "write -P 0xab 4096 4096", "read -P 0xab 4096 4096", "flush"); err != nil || strings.Contains(out, "failed") {
		t.Fatalf("G1's write before the fence: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(img)
	if !bytes.Equal(b[4096:8192], bytes.Repeat([]byte{0xab}, 4096)) {
		t.Fatal("G1's write did not land in the image")
	}

	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/fence?host=G1", s.ControlPort()), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("fence: %s", resp.Status)
	}

	out, _ := qemuIO(t, s, "G1", "write -P 0xcd 4096 4096")
	if !strings.Contains(out, "write failed") {
		t.Fatalf("G1's write after the fence was not refused:\n%s", out)
	}
	if fenced, n := s.Fenced("G1"); !fenced || n < 1 {
		t.Fatalf("G1: fenced %v, %d refused writes", fenced, n)
	}
	if out, err := qemuIO(t, s, "G1", "read -P 0xab 4096 4096"); err != nil || strings.Contains(out, "failed") {
		t.Fatalf("a fenced host still reads (as under a write-exclusive reservation): %v\n%s", err, out)
	}
	if out, err := qemuIO(t, s, "G2", "write -P 0xef 8192 4096"); err != nil || strings.Contains(out, "failed") {
		t.Fatalf("G2's write after G1's fence: %v\n%s", err, out)
	}
	b, _ = os.ReadFile(img)
	if !bytes.Equal(b[4096:8192], bytes.Repeat([]byte{0xab}, 4096)) || !bytes.Equal(b[8192:12288], bytes.Repeat([]byte{0xef}, 4096)) {
		t.Fatal("after the fence: G1's block changed or G2's write did not land")
	}
}
