//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/validate"
	"github.com/kayo-labs/terraform-provider-kayo/internal/netnsrig"
	"github.com/kayo-labs/terraform-provider-kayo/internal/testcli"
)

// Hosts as network namespaces, one agent in each: the agents probe each
// other on both cluster networks and `kayoctl cluster validate` passes
// "Validate Network Communication" from those probes; with one host's
// heartbeat link down it fails naming the pairs and the network. Y-23's
// agent runs with its clock 10 s ahead: "Validate Clock Synchronization"
// warns naming it and its offset, and only it.
func TestAgentsProbeEachOtherAcrossNamespaces(t *testing.T) {
	rig := netnsrig.New(t, "Public", "Heartbeat")
	bin := testcli.Build(t, "./cmd/kayoctl")
	dir := newDataDir(t, 5)
	hosts := map[string]*netnsrig.Host{}
	for i, n := range threeNodes {
		octet := 21 + i
		hosts[n] = rig.AddHost(n, map[string]netip.Prefix{
			"Public":    netip.MustParsePrefix(fmt.Sprintf("192.0.2.%d/24", octet)),
			"Heartbeat": netip.MustParsePrefix(fmt.Sprintf("10.10.10.%d/24", octet)),
		})
		p := &agentProc{node: n}
		// Facts are not reported: the declared hosts are the seed's Xeons.
		args := []string{"--data-dir", dir, "agent", "--node", n, "--interval", "250ms", "--report-facts=false"}
		if n == "Y-23-2k8x64" {
			args = append(args, "--clock-skew", "10s")
		}
		p.cmd = hosts[n].Command(bin, args...)
		p.cmd.Stdout, p.cmd.Stderr = p, p
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("agent %s log:\n%s", n, p.log())
			}
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		})
	}
	report := func(name string) (validate.Test, int) {
		cmd := exec.Command(bin, "--data-dir", dir, "cluster", "validate", "HVCLUSTER", "--json")
		out, err := cmd.Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		var rep struct{ Tests []validate.Test }
		if err := json.Unmarshal(out, &rep); err != nil {
			t.Fatalf("cluster validate --json: %v\n%s", err, out)
		}
		for _, x := range rep.Tests {
			if x.Name == name {
				return x, code
			}
		}
		t.Fatalf("no %q test in %s", name, out)
		return validate.Test{}, 0
	}
	comm := func() (validate.Test, int) { return report(validate.TestNetworkCommunication) }
	waitFor := func(what string, ok func(validate.Test, int) bool) validate.Test {
		t.Helper()
		deadline := time.Now().Add(45 * time.Second)
		for {
			x, code := comm()
			if ok(x, code) {
				return x
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: still %+v (exit %d)", what, x, code)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	x := waitFor("every agent probing, every pair reachable", func(x validate.Test, code int) bool {
		return x.Source == validate.SourceProbed && x.Result == validate.Passed && code == 0
	})
	t.Logf("all links up: %s", x.Message)
	if !strings.Contains(x.Message, "12 probes answered") {
		t.Errorf("3 nodes × 2 peers × 2 networks = 12 probes, got: %s", x.Message)
	}
	if len(x.Agents) != 3 {
		t.Errorf("the test names %+v, want the 3 agents whose probes it used", x.Agents)
	}
	clock, _ := report(validate.TestClock)
	t.Logf("clocks: %s", clock.Message)
	if !regexp.MustCompile(`host "Y-23-2k8x64"'s clock is \+(99\d\d|100\d\d) ms off`).MatchString(clock.Message) ||
		clock.Result != validate.Warning || strings.Contains(clock.Message, `"Y-21-2k8x64"'s clock`) || strings.Contains(clock.Message, `"Y-22-2k8x64"'s clock`) {
		t.Errorf("Y-23's clock 10 s ahead: %+v, want a warning naming it (about +10000 ms) and no other node", clock)
	}
	hosts["Y-22-2k8x64"].SetLink("Heartbeat", false)
	// Every agent's next round sees the cut: both directions are named.
	wants := []string{`"Y-21-2k8x64" cannot reach "Y-22-2k8x64" on network 10.10.10.0/24`,
		`"Y-22-2k8x64" cannot reach "Y-21-2k8x64" on network 10.10.10.0/24`,
		`"Y-22-2k8x64" cannot reach "Y-23-2k8x64" on network 10.10.10.0/24`,
		`"Y-23-2k8x64" cannot reach "Y-22-2k8x64" on network 10.10.10.0/24`}
	x = waitFor("Y-22's heartbeat link cut, seen by every agent", func(x validate.Test, code int) bool {
		for _, w := range wants {
			if !strings.Contains(x.Message, w) {
				return false
			}
		}
		return x.Result == validate.Failed && code == 1
	})
	t.Logf("heartbeat cut: %s", x.Message)
	if strings.Contains(x.Message, "192.0.2.0/24") || strings.Contains(x.Message, `"Y-21-2k8x64" cannot reach "Y-23-2k8x64"`) {
		t.Errorf("message blames a path that works: %s", x.Message)
	}
	hosts["Y-22-2k8x64"].SetLink("Heartbeat", true)
	waitFor("the link back up", func(x validate.Test, code int) bool { return x.Result == validate.Passed && code == 0 })
}
