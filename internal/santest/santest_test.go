package santest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
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
	args = append(args, s.DriveFile(host))
	out, err := exec.Command("qemu-io", args...).CombinedOutput()
	return string(out), err
}

// startSAN serves a fresh 1 MiB image (qemu-io, QEMU's NBD client, is
// the tests' host).
func startSAN(t *testing.T) (*Server, string) {
	t.Helper()
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
	t.Cleanup(func() { _ = s.Close() })
	return s, img
}

func TestFenceCutsOffThatHostOnly(t *testing.T) {
	s, img := startSAN(t)

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

	if out, err := qemuIO(t, s, "G1", "write -P 0xcd 4096 4096"); err == nil && !strings.Contains(out, "failed") {
		t.Fatalf("G1's write after the fence was not refused:\n%s", out)
	}
	if fenced, _ := s.Fenced("G1"); !fenced {
		t.Fatal("G1 is not fenced")
	}
	if out, err := qemuIO(t, s, "G2", "write -P 0xef 8192 4096"); err != nil || strings.Contains(out, "failed") {
		t.Fatalf("G2's write after G1's fence: %v\n%s", err, out)
	}
	b, _ = os.ReadFile(img)
	if !bytes.Equal(b[4096:8192], bytes.Repeat([]byte{0xab}, 4096)) || !bytes.Equal(b[8192:12288], bytes.Repeat([]byte{0xef}, 4096)) {
		t.Fatal("after the fence: G1's block changed or G2's write did not land")
	}
}

// TestFenceCutsAnOpenConnection: a host connected before its fence (a
// frozen QEMU's) gets none of its later writes in.
func TestFenceCutsAnOpenConnection(t *testing.T) {
	s, img := startSAN(t)
	cmd := exec.Command("qemu-io", "-f", "raw", s.DriveFile("G1"))
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewReader(outR)
	if _, err := io.WriteString(in, "write -P 0x11 0 4096\nflush\n"); err != nil {
		t.Fatal(err)
	}
	for {
		l, err := out.ReadString('\n')
		if err != nil {
			t.Fatalf("qemu-io: %v", err)
		}
		if strings.Contains(l, "wrote 4096") {
			break
		}
	}
	s.Fence("G1")
	_, _ = io.WriteString(in, "write -P 0x22 0 4096\nquit\n")
	in.Close()
	rest, _ := io.ReadAll(out)
	_ = cmd.Wait()
	b, _ := os.ReadFile(img)
	if !bytes.Equal(b[:4096], bytes.Repeat([]byte{0x11}, 4096)) {
		t.Fatalf("a write on G1's open connection landed after its fence; qemu-io said:\n%s", rest)
	}
	if !strings.Contains(string(rest), "failed") {
		t.Fatalf("qemu-io did not see its write fail:\n%s", rest)
	}
}

// TestControlRefusesOtherUsers: only this user's processes (the guests'
// QEMU) reach the control port; another local user cannot fence a host.
func TestControlRefusesOtherUsers(t *testing.T) {
	s, _ := startSAN(t)
	_, e1 := exec.LookPath("setpriv")
	_, e2 := exec.LookPath("busybox")
	if os.Geteuid() != 0 || e1 != nil || e2 != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("needs root, setpriv and busybox under CI=true (root %v, %v, %v)", os.Geteuid() == 0, e1, e2)
		}
		t.Skipf("needs root, setpriv and busybox (root %v, %v, %v)", os.Geteuid() == 0, e1, e2)
	}
	fence := func(host string, as ...string) string {
		args := append(as, "busybox", "nc", "127.0.0.1", fmt.Sprint(s.ControlPort()))
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Stdin = strings.NewReader("POST /fence?host=" + host + " HTTP/1.0\r\n\r\n")
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	out := fence("G7", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
	if fenced, _ := s.Fenced("G7"); fenced {
		t.Fatalf("another user fenced G7 through the control port:\n%s", out)
	}
	out = fence("G8", "env")
	if fenced, _ := s.Fenced("G8"); !fenced {
		t.Fatalf("this user's fence of G8 over the same client did not take:\n%s", out)
	}
}
