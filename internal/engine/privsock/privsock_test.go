package privsock

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/localuser"
)

// TestMain doubles as the local attacker: run with KAYO_TEST_DIAL=path it
// dials that socket, writes a byte and reports what it read.
func TestMain(m *testing.M) {
	if p := os.Getenv("KAYO_TEST_DIAL"); p != "" {
		c, err := net.Dial("unix", p)
		if err != nil {
			fmt.Println("dial:", err)
			os.Exit(3)
		}
		_, _ = c.Write([]byte{1})
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 16)
		n, err := c.Read(b)
		fmt.Printf("read %q %v\n", b[:n], err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestListenModeWhateverUmask: under umask 000 the socket is 0600 and its
// directory 0700 (an existing 0777 directory included).
func TestListenModeWhateverUmask(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "sock")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(filepath.Join(dir, "a.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for p, want := range map[string]os.FileMode{dir: 0o700, ln.Path(): 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %o, want %o", p, fi.Mode().Perm(), want)
		}
	}
}

// TestDirRefusesForeignOwner: a directory another user owns (one a local
// user created first under /tmp) is refused.
func TestDirRefusesForeignOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		localuser.SkipOrFail(t, errors.New("chown to another user needs root"))
	}
	dir := filepath.Join(t.TempDir(), "theirs")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := Dir(dir); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Fatalf("Dir of a directory owned by nobody: %v", err)
	}
}

// TestPathFallsBackPrivately: a path too long for a socket lands in this
// user's private directory, not in the shared temporary directory.
func TestPathFallsBackPrivately(t *testing.T) {
	long := filepath.Join(t.TempDir(), strings.Repeat("d", 120))
	p := Path(long, "vm.qmp")
	if len(p) > maxPath || filepath.Dir(p) != Fallback() || filepath.Ext(p) != ".qmp" {
		t.Fatalf("Path = %q", p)
	}
	ln, err := Listen(p)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if fi, _ := os.Stat(Fallback()); fi == nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("fallback directory %s: %v", Fallback(), fi)
	}
}

// TestLocalUserRefused: nobody cannot connect to the socket in a data
// directory others may traverse; and where the socket and its directory
// were opened up (0777), the peer check still closes nobody's connection
// before the server sees it.
func TestLocalUserRefused(t *testing.T) {
	if _, err := localuser.Command("true"); err != nil {
		localuser.SkipOrFail(t, err)
	}
	base := t.TempDir()
	if err := localuser.Reachable(base); err != nil {
		t.Fatal(err)
	}
	self, err := localuser.Self(base)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(filepath.Join(base, "qemu", "agent.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	refused := make(chan Cred, 4)
	ln.Refused = func(c Cred, err error) { refused <- c }
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() string {
		cmd, _ := localuser.Command(self)
		cmd.Env = append(os.Environ(), "KAYO_TEST_DIAL="+ln.Path())
		out, _ := cmd.CombinedOutput()
		return strings.TrimSpace(string(out))
	}
	if out := dial(); !strings.Contains(out, "permission denied") {
		t.Fatalf("nobody dialling the socket: %q, want permission denied", out)
	}
	// Defence in depth: opened up, the peer check refuses nobody.
	for _, p := range []string{filepath.Dir(ln.Path()), ln.Path()} {
		if err := os.Chmod(p, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	out := dial()
	select {
	case c := <-refused:
		if c.UID != 65534 {
			t.Fatalf("refused peer %+v, want uid 65534", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("nobody's connection was not refused (its output: %q)", out)
	}
	if !strings.Contains(out, "EOF") && !strings.Contains(out, "reset") {
		t.Fatalf("nobody's connection: %q, want it closed", out)
	}
	select {
	case <-accepted:
		t.Fatal("the server accepted nobody's connection")
	default:
	}
	// Our own user still gets through.
	c, err := net.Dial("unix", ln.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("own connection not accepted")
	}
}
