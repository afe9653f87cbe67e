package qemu

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/localuser"
)

// TestMain doubles as the local attacker run as nobody: with
// KAYO_TEST_HOLD=host:port it connects there, says so, and holds the
// connection until its stdin closes.
func TestMain(m *testing.M) {
	if addr := os.Getenv("KAYO_TEST_HOLD"); addr != "" {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			fmt.Println("dial:", err)
			os.Exit(3)
		}
		fmt.Println("connected")
		_, _ = io.Copy(io.Discard, os.Stdin)
		_ = c.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// attackPort plays the local users who connect to a migration target
// first: nobody connects and holds its connection; root, without the
// key, injects a plain-text migration stream (QEVM header, version 3,
// end of stream). It returns a function that ends nobody's connection.
func attackPort(t *testing.T, self string, port int) func() {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd, err := localuser.Command(self)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), "KAYO_TEST_HOLD="+addr)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "connected" {
		_ = cmd.Wait()
		t.Fatalf("nobody connecting to %s: %q", addr, line)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte{'Q', 'E', 'V', 'M', 0, 0, 0, 3, 0x1f})
	_ = c.Close()
	return func() { _ = in.Close(); _ = cmd.Wait() }
}

// TestFloorCounterContinues moves the guest between two QEMU processes on
// loopback. Plain text, a local user who connects to the target first
// breaks the move (the attack is real); with TLS and the pre-shared key,
// on a connection the agents authenticated first, as the driver's
// agents migrate, the same attack changes nothing and the
// guest's counter continues. It logs each move's figures, plain and TLS.
func TestFloorCounterContinues(t *testing.T) {
	bin, g := testGuest(t)
	if _, err := localuser.Command("true"); err != nil {
		localuser.SkipOrFail(t, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	self, err := localuser.Self(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := localuser.Reachable(dir); err != nil {
		t.Fatal(err)
	}
	f, err := StartFloor(ctx, bin, g, 128, 64<<20, filepath.Join(dir, "floor"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	move := func(kind string) {
		t.Helper()
		res, err := f.Migrate(ctx)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if err := f.Verify(ctx); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		t.Logf("raw QMP migration, %s, 128 MiB: total %d ms, downtime %d ms, wall %d ms (launch %d, resume %d)", kind, res.TotalMs, res.DowntimeMs, res.WallMs, res.LaunchMs, res.ResumeMs)
	}
	move("plain")
	var release func()
	f.OnListen = func(port int) { release = attackPort(t, self, port) }
	actx, acancel := context.WithTimeout(ctx, 15*time.Second)
	if _, err := f.Migrate(actx); err == nil {
		err = f.Verify(actx)
		if err == nil {
			t.Fatal("plain text: the move succeeded though a local user connected to the target first")
		}
	} else {
		t.Logf("plain text, a local user connected first: %v", err)
	}
	acancel()
	release()
	if f.cur.Cfg.Name != f.name(f.side) {
		t.Fatalf("floor side %d runs %s", f.side, f.cur.Cfg.Name)
	}
	f.Key = bytes.Repeat([]byte{7}, 32)
	move("TLS-PSK, local users connected first")
	release()
}

// TestNBDLocalUser: nobody cannot reach a VM's disk on the agent's NBD
// socket (qemu-io's write fails, the disk is unchanged); the agent's own
// user can, through the same command.
func TestNBDLocalUser(t *testing.T) {
	qio, err := exec.LookPath("qemu-io")
	if err != nil {
		SkipOrFail(t, fmt.Errorf("qemu-io not found (apt-get install qemu-utils): %w", err))
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
	x := srv.Add("WEB01", FileDisk{File: disk, Bytes: 1 << 20})
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
