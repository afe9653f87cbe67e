// Package qemutest holds what the tests of the qemu hypervisor driver
// share: the test guest, node agents (`kayoctl agent`) as processes, and
// reading the guest's serial console.
package qemutest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor/qemu"
	"github.com/kayo-labs/terraform-provider-kayo/internal/testcli"
)

// Guest builds the test guest and returns its directory, or skips the test
// with the reason when QEMU or the guest's packages are missing (under
// CI=true it fails instead).
func Guest(t testing.TB) string {
	t.Helper()
	_, g, err := Prepare(RepoRoot())
	if err != nil {
		SkipOrFail(t, err)
	}
	return filepath.Dir(g.Kernel)
}

// Agent is a `kayoctl agent` process.
type Agent struct {
	Node string
	Cmd  *exec.Cmd
	Log  string
}

// StartAgents starts `kayoctl agent --node N` for each node on dataDir
// with the test guest; they are stopped (SIGTERM, which also ends their
// QEMU processes) when the test ends.
func StartAgents(t testing.TB, dataDir, guestDir string, nodes ...string) []*Agent {
	t.Helper()
	return StartAgentsIn(t, "", dataDir, guestDir, nodes...)
}

// StartAgentsIn is StartAgents with the agents in network namespace ns
// ("" this process's), e.g. a netnsrig host's: the switches' bridges and
// taps they make stay in it.
func StartAgentsIn(t testing.TB, ns, dataDir, guestDir string, nodes ...string) []*Agent {
	t.Helper()
	var out []*Agent
	for _, n := range nodes {
		out = append(out, startAgent(t, ns, dataDir, guestDir, n))
	}
	for _, a := range out {
		a.waitReady(t)
	}
	return out
}

// StartAgentIn starts node's agent in network namespace ns with further
// arguments (e.g. --migration-address, an address of that host), as a
// rig's host runs it; ready when it returns.
func StartAgentIn(t testing.TB, ns, dataDir, guestDir, node string, extra ...string) *Agent {
	t.Helper()
	a := startAgent(t, ns, dataDir, guestDir, node, extra...)
	a.waitReady(t)
	return a
}

func startAgent(t testing.TB, ns, dataDir, guestDir, node string, extra ...string) *Agent {
	t.Helper()
	bin := testcli.Build(t, "./cmd/kayoctl")
	log := filepath.Join(dataDir, "agent-"+node+".log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	// The lab's hosts are fictional, all played by this machine: no
	// facts reported, no network probes.
	args := append([]string{"agent", "--node", node, "--interval", "250ms", "--report-facts=false", "--probe-port=0"}, extra...)
	cmd := exec.Command(bin, args...)
	if ns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	}
	cmd.Env = append(os.Environ(), "KAYO_DATA_DIR="+dataDir, "KAYO_QEMU_GUEST_DIR="+guestDir, "NO_COLOR=1")
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	a := &Agent{Node: node, Cmd: cmd, Log: log}
	t.Cleanup(func() { a.Stop(t) })
	return a
}

// waitReady waits for the agent's first heartbeat, as a user starts the
// agents before applying.
func (a *Agent) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, _ := os.ReadFile(a.Log)
		if strings.Contains(string(b), "qemu: accepting VMs") {
			return
		}
		if time.Now().After(deadline) || a.Cmd.ProcessState != nil {
			t.Fatalf("agent %s not ready within 60 s:\n%s", a.Node, tail(string(b), 3000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends the agent (SIGTERM; SIGKILL after 10 s).
func (a *Agent) Stop(t testing.TB) {
	if a.Cmd.ProcessState != nil {
		return
	}
	_ = a.Cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = a.Cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = a.Cmd.Process.Kill()
		<-done
	}
	if t.Failed() {
		b, _ := os.ReadFile(a.Log)
		t.Logf("agent %s log:\n%s", a.Node, tail(string(b), 6000))
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// SerialPath is the serial console log of VM vm on node.
func SerialPath(dataDir, node, vm string) string {
	return qemu.SerialPath(filepath.Join(dataDir, "qemu", node), vm)
}

var counterLine = regexp.MustCompile(`KAYO-COUNTER id=(\S+) n=(\d+) disk=\[([^\]]*)\]`)

// Line is one counter line of the guest's console.
type Line struct {
	ID   string
	N    int
	Disk string
}

// Counters reads the counter lines of a serial log.
func Counters(path string) []Line {
	b, _ := os.ReadFile(path)
	var out []Line
	for _, m := range counterLine.FindAllStringSubmatch(string(b), -1) {
		n, _ := strconv.Atoi(m[2])
		out = append(out, Line{m[1], n, strings.TrimSpace(m[3])})
	}
	return out
}

// WaitCounter waits until the log shows a counter of at least min.
func WaitCounter(ctx context.Context, path string, min int) error {
	_, _, err := WaitCounterID(ctx, path, min)
	return err
}

// Continues checks that after (the console lines on the new node)
// continues before (on the old one): same boot, the next number, and the
// first record read back from the disk is the last one written before the
// move.
func Continues(before, after []Line) (string, error) {
	if len(before) == 0 || len(after) == 0 {
		return "", fmt.Errorf("counter lines: %d before the move, %d after", len(before), len(after))
	}
	b, a := before[len(before)-1], after[0]
	if a.ID != b.ID {
		return "", fmt.Errorf("the guest rebooted: boot %s before the move, %s after", b.ID, a.ID)
	}
	if a.N != b.N+1 {
		return "", fmt.Errorf("the counter did not continue: %d before the move, %d after (want %d)", b.N, a.N, b.N+1)
	}
	want := fmt.Sprintf("KAYO-REC id=%s n=%d", b.ID, b.N)
	if a.Disk != want {
		return "", fmt.Errorf("first disk read after the move: %q, want %q (written before it)", a.Disk, want)
	}
	return fmt.Sprintf("counter %d → %d, same boot %s; read back from disk after the move: %q", b.N, a.N, a.ID, a.Disk), nil
}

// Alive reports whether process pid exists.
func Alive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil
}
