package qemutest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
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
	bin, g, err := Prepare(RepoRoot())
	if err != nil {
		SkipOrFail(t, err)
	}
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
