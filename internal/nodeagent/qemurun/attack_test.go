package qemurun

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/localuser"
)

// TestMain doubles as the local attacker run as nobody: with
// KAYO_TEST_HOLD=1 it reads "host:port" lines on stdin, connects to each
// and holds the connection (answering "connected" or the error), until
// stdin closes.
func TestMain(m *testing.M) {
	if os.Getenv("KAYO_TEST_HOLD") == "1" {
		var held []net.Conn
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			c, err := net.DialTimeout("tcp", sc.Text(), 2*time.Second)
			if err != nil {
				fmt.Println("dial:", err)
				continue
			}
			held = append(held, c)
			fmt.Println("connected")
		}
		for _, c := range held {
			_ = c.Close()
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// localAttacker plays the local users of issue 19 against a QEMU
// cluster's agents: it watches the TCP listeners of the given processes
// (the agents' and their QEMU processes'), and on each new one nobody
// connects first and holds its connection, then root, without the
// cluster's key, injects a plain-text migration stream.
type localAttacker struct {
	pids   func() []int
	nobody *bufio.Reader
	stdin  io.WriteCloser
	wait   func() error
	mu     sync.Mutex
	seen   map[int]bool
	hits   []string
	stop   chan struct{}
	done   chan struct{}
}

func startLocalAttacker(t *testing.T, pids func() []int) *localAttacker {
	t.Helper()
	if _, err := localuser.Command("true"); err != nil {
		localuser.SkipOrFail(t, err)
	}
	dir := t.TempDir()
	if err := localuser.Reachable(dir); err != nil {
		t.Fatal(err)
	}
	self, err := localuser.Self(dir)
	if err != nil {
		t.Fatal(err)
	}
	cmd, _ := localuser.Command(self)
	cmd.Env = append(os.Environ(), "KAYO_TEST_HOLD=1")
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
	a := &localAttacker{pids: pids, nobody: bufio.NewReader(out), stdin: in, wait: cmd.Wait,
		seen: map[int]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	for _, p := range a.listeners() {
		a.seen[p] = true // there before: not the migration's
	}
	go a.run()
	t.Cleanup(a.close)
	return a
}

func (a *localAttacker) run() {
	defer close(a.done)
	for {
		select {
		case <-a.stop:
			return
		case <-time.After(2 * time.Millisecond):
		}
		for _, port := range a.listeners() {
			if a.seen[port] {
				continue
			}
			a.seen[port] = true
			addr := "127.0.0.1:" + strconv.Itoa(port)
			_, _ = fmt.Fprintln(a.stdin, addr)
			line, _ := a.nobody.ReadString('\n')
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				_, _ = c.Write([]byte{'Q', 'E', 'V', 'M', 0, 0, 0, 3, 0x1f})
				_ = c.Close()
			}
			a.mu.Lock()
			a.hits = append(a.hits, fmt.Sprintf("%s (nobody: %s)", addr, strings.TrimSpace(line)))
			a.mu.Unlock()
		}
	}
}

// Hits returns the listeners attacked since the last call.
func (a *localAttacker) Hits() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	h := a.hits
	a.hits = nil
	return h
}

func (a *localAttacker) close() {
	close(a.stop)
	<-a.done
	_ = a.stdin.Close()
	_ = a.wait()
}

// listeners returns the ports of the TCP sockets in LISTEN state that the
// watched processes hold.
func (a *localAttacker) listeners() []int {
	inodes := map[string]bool{}
	for _, pid := range a.pids() {
		dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			l, err := os.Readlink(filepath.Join(dir, e.Name()))
			if err == nil && strings.HasPrefix(l, "socket:[") {
				inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
			}
		}
	}
	var ports []int
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, _ := os.ReadFile(f)
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 10 || fs[3] != "0A" || !inodes[fs[9]] {
				continue
			}
			if i := strings.LastIndexByte(fs[1], ':'); i > 0 {
				if p, err := strconv.ParseUint(fs[1][i+1:], 16, 16); err == nil {
					ports = append(ports, int(p))
				}
			}
		}
	}
	return ports
}

// qemuPIDs returns this test process (its agents run in it) and the QEMU
// processes running with files under e's data directory (found in /proc
// as soon as they start, before any record names them).
func qemuPIDs(e *engine.Engine) func() []int {
	ours := map[int]bool{}
	return func() []int {
		pids := []int{os.Getpid()}
		ents, _ := os.ReadDir("/proc")
		for _, ent := range ents {
			pid, err := strconv.Atoi(ent.Name())
			if err != nil {
				continue
			}
			is, known := ours[pid]
			if !known {
				b, _ := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
				cmd := string(b)
				is = strings.Contains(cmd, "qemu-system") && strings.Contains(cmd, e.DataDir())
				ours[pid] = is
			}
			if is {
				pids = append(pids, pid)
			}
		}
		return pids
	}
}
