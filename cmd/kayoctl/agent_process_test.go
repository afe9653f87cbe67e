//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/testcli"
)

const (
	agentInterval    = 200 * time.Millisecond
	heartbeatTimeout = 2 * time.Second
	// detectMargin bounds how late, past the heartbeat timeout, a dead
	// node may be declared down: a lease takeover (3 intervals) plus a tick
	// and scheduling slack, well under a second on an idle machine.
	detectMargin = 1500 * time.Millisecond
)

// agentProc is one `kayoctl agent` process.
type agentProc struct {
	node string
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs bytes.Buffer
}

func (p *agentProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.Write(b)
}

func (p *agentProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

func startAgent(t *testing.T, bin, dir, node string) *agentProc {
	t.Helper()
	// The lab's hosts are fictional, all played by this machine (one network
	// namespace): no facts reported, no network probes.
	return startAgentCmd(t, node, exec.Command(bin, "--data-dir", dir, "agent", "--node", node, "--interval", agentInterval.String(), "--report-facts=false", "--probe-port=0"))
}

// startAgentCmd starts cmd, an agent of node, logging into the returned
// agentProc; it is killed at the test's end unless it was waited for.
func startAgentCmd(t *testing.T, node string, cmd *exec.Cmd) *agentProc {
	t.Helper()
	p := &agentProc{node: node, cmd: cmd}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
	return p
}

// agentLogs is the logs of agents, each headed by its node.
func agentLogs(agents []*agentProc) string {
	var b strings.Builder
	for _, a := range agents {
		fmt.Fprintf(&b, "--- %s\n%s", a.node, a.log())
	}
	return b.String()
}

// sparseLUN makes a 1 GiB sparse file for a file-backed shared LUN.
func sparseLUN(t *testing.T) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "shared.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 1<<30); err != nil {
		t.Fatal(err)
	}
	return img
}

// eventsJSON runs the built `kayoctl events --json`.
func eventsJSON(t *testing.T, bin, dir string) []eventJSON {
	t.Helper()
	out, err := exec.Command(bin, "--data-dir", dir, "events", "--json", "--cluster", "HVCLUSTER").Output()
	if err != nil {
		t.Fatalf("kayoctl events --json: %v", err)
	}
	var evs []eventJSON
	if err := json.Unmarshal(out, &evs); err != nil {
		t.Fatalf("kayoctl events --json: %v\n%s", err, out)
	}
	return evs
}

// waitEvent polls the history until match finds an event, or fails after
// limit.
func waitEvent(t *testing.T, bin, dir string, limit time.Duration, what string, match func(eventJSON) bool) eventJSON {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		for _, ev := range eventsJSON(t, bin, dir) {
			if match(ev) {
				return ev
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAgentsDetectKilledNode starts agents for two of a three-node
// cluster's nodes, SIGKILLs the leader's, and checks from `kayoctl events`
// that the survivor took the lease over and declared the node down within
// the heartbeat timeout plus a margin, that it came back up when its agent
// restarted, and that only one leader acted at a time.
func TestAgentsDetectKilledNode(t *testing.T) {
	bin := testcli.Build(t, "./cmd/kayoctl")
	dir := newDataDir(t, int(heartbeatTimeout/time.Second))
	agents := map[string]*agentProc{}
	for _, n := range threeNodes[:2] {
		agents[n] = startAgent(t, bin, dir, n)
	}
	dump := func() {
		for _, p := range agents {
			t.Logf("agent %s log:\n%s", p.node, p.log())
		}
	}
	defer func() {
		if t.Failed() {
			dump()
		}
	}()

	first := waitEvent(t, bin, dir, 5*time.Second, "leader election", func(ev eventJSON) bool {
		return ev.Kind == engine.EventLeaderElected
	})
	leader := first.Subject
	survivor := threeNodes[0]
	if survivor == leader {
		survivor = threeNodes[1]
	}
	// Let both heartbeat a few times, then kill the leader's agent.
	time.Sleep(3 * agentInterval)
	if err := agents[leader].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	_ = agents[leader].cmd.Wait()

	down := waitEvent(t, bin, dir, heartbeatTimeout+3*time.Second, "host.down of "+leader, func(ev eventJSON) bool {
		return ev.Kind == engine.EventHostDown && ev.Subject == leader
	})
	after := down.Time.Sub(killed)
	t.Logf("%s declared down %s after SIGKILL (timeout %s) by %s, term %s", leader, after.Round(time.Millisecond),
		heartbeatTimeout, down.Detail["by"], down.Detail["term"])
	if after > heartbeatTimeout+detectMargin {
		t.Errorf("%s declared down %s after SIGKILL; want within %s + %s", leader, after, heartbeatTimeout, detectMargin)
	}
	if after < heartbeatTimeout-agentInterval-50*time.Millisecond {
		t.Errorf("%s declared down only %s after SIGKILL: before its heartbeat timeout %s", leader, after, heartbeatTimeout)
	}
	if down.Detail["by"] != survivor || down.Detail["reason"] != engine.DownByHeartbeat {
		t.Errorf("down event %+v: want by %s for reason heartbeat", down, survivor)
	}
	// One node of three down: quorum holds.
	for _, ev := range eventsJSON(t, bin, dir) {
		if ev.Kind == engine.EventQuorumLost {
			t.Errorf("quorum lost with 2 of 3 nodes up: %+v", ev)
		}
	}

	// Its agent returns: the leader declares it up again.
	agents[leader] = startAgent(t, bin, dir, leader)
	waitEvent(t, bin, dir, 3*time.Second, "host.up of "+leader, func(ev eventJSON) bool {
		return ev.Kind == engine.EventHostUp && ev.Subject == leader
	})

	// Both stop cleanly on SIGTERM.
	for _, p := range agents {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range agents {
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("agent %s exited with %v", p.node, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("agent %s did not stop on SIGTERM", p.node)
		}
	}
	checkOneLeaderAtATime(t, eventsJSON(t, bin, dir))
}

// checkOneLeaderAtATime asserts from the history that leadership passed
// from term to term without overlap, and that every node verdict came from
// the leader of the current term.
func checkOneLeaderAtATime(t *testing.T, evs []eventJSON) {
	t.Helper()
	var term int64
	holder := ""
	actions := 0
	for _, ev := range evs {
		switch ev.Kind {
		case engine.EventLeaderElected:
			n, err := strconv.ParseInt(ev.Detail["term"], 10, 64)
			if err != nil || n != term+1 {
				t.Errorf("rev %d: leader %s elected with term %q after term %d", ev.Revision, ev.Subject, ev.Detail["term"], term)
			}
			if term > 0 {
				if ev.Detail["previous"] != holder || ev.Detail["previous_term"] != fmt.Sprint(term) {
					t.Errorf("rev %d: took over from %s term %s, but %s held term %d", ev.Revision,
						ev.Detail["previous"], ev.Detail["previous_term"], holder, term)
				}
				expired, err := time.Parse(time.RFC3339Nano, ev.Detail["previous_expired"])
				if err != nil || expired.After(ev.Time) {
					t.Errorf("rev %d: %s took the lease at %s while %s's lease ran until %s", ev.Revision, ev.Subject,
						ev.Time.Format(time.RFC3339Nano), holder, ev.Detail["previous_expired"])
				}
			}
			term, holder = n, ev.Subject
		case engine.EventLeaderReleased:
			if ev.Subject != holder || ev.Detail["term"] != fmt.Sprint(term) {
				t.Errorf("rev %d: %s released term %s, but %s held term %d", ev.Revision, ev.Subject, ev.Detail["term"], holder, term)
			}
		case engine.EventHostDown, engine.EventHostUp:
			if ev.Detail["by"] == "kayoctl" {
				continue
			}
			actions++
			if ev.Detail["by"] != holder || ev.Detail["term"] != fmt.Sprint(term) {
				t.Errorf("rev %d: %s %s by %s term %s, but the leader was %s term %d", ev.Revision, ev.Kind, ev.Subject,
					ev.Detail["by"], ev.Detail["term"], holder, term)
			}
		}
	}
	if term < 2 || actions < 2 {
		t.Errorf("expected a takeover and two leader actions, saw term %d and %d actions", term, actions)
	}
}
