package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/nodeagent/workexec"
	"github.com/kayo-labs/terraform-provider-kayo/internal/testcli"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testcli.Cleanup()
	os.Exit(code)
}

func hostSpec(name string, octet int) engine.HostSpec {
	return engine.HostSpec{
		Name: name, Address: fmt.Sprintf("192.0.2.%d", octet), OSEdition: "enterprise",
		ProcessorVendor: "intel", ProcessorModel: "Xeon E5440", ProcessorCores: 8, MemoryMB: 32768,
		Features: []string{"Hyper-V", "Failover-Clustering"},
		Adapters: []engine.Adapter{
			{Name: "Public", Network: "192.0.2.0/24", Address: fmt.Sprintf("192.0.2.%d", octet)},
			{Name: "Heartbeat", Network: "10.10.10.0/24", Address: fmt.Sprintf("10.10.10.%d", octet)},
		},
	}
}

var threeNodes = []string{"Y-21-2k8x64", "Y-22-2k8x64", "Y-23-2k8x64"}

// newDataDir forms HVCLUSTER of three hosts (plus one host in no cluster)
// in a fresh data dir.
func newDataDir(t *testing.T, heartbeatTimeout int) string {
	t.Helper()
	dir := t.TempDir()
	e, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	for i, n := range append(threeNodes, "Y-24-2k8x64") {
		if _, err := e.CreateHost(ctx, hostSpec(n, 21+i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.CreateCluster(ctx, engine.ClusterSpec{Name: "HVCLUSTER", Nodes: threeNodes,
		StaticAddress: "192.0.2.50/24", Hypervisor: engine.HypervisorSimulator, HeartbeatTimeoutSeconds: heartbeatTimeout}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// kayoctl runs the CLI in-process.
func kayoctl(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	c := &cli{stdout: &out, stderr: &errb, getenv: func(k string) string { return env[k] }}
	code = c.run(args)
	return code, out.String(), errb.String()
}

func TestUsageAndErrors(t *testing.T) {
	dir := newDataDir(t, 10)
	cases := []struct {
		args []string
		code int
		want string // in stderr (or stdout for code 0)
	}{
		{nil, exitUsage, "no command given"},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"status", "--bogus"}, exitUsage, "status: flag provided but not defined: -bogus"},
		{[]string{"status", "extra"}, exitUsage, `status: unexpected argument "extra"`},
		{[]string{"host"}, exitUsage, "want `host fail NAME` or `host recover NAME`"},
		{[]string{"host", "explode", "X"}, exitUsage, `unknown subcommand "explode"`},
		{[]string{"host", "fail"}, exitUsage, "want exactly one host name"},
		{[]string{"agent"}, exitUsage, "--node NAME is required"},
		{[]string{"agent", "--node", "Y-21-2k8x64", "--interval", "1ms"}, exitUsage, "--interval 1ms is not allowed"},
		{[]string{"agent", "--node", "A", "--interval", "1s", "--lease", "1s"}, exitUsage, "must be longer than --interval"},
		{[]string{"agent", "--node", "A", "--migration-address", "0.0.0.0"}, exitUsage, "--migration-address \"0.0.0.0\" is not allowed"},
		{[]string{"agent", "--node", "A", "--migration-address", "host.example"}, exitUsage, "allowed: one IP address of this host"},
		{[]string{"--data-dir", dir, "host", "fail", "NOPE"}, exitError, `host "NOPE" is not registered`},
		{[]string{"--data-dir", dir, "status", "--cluster", "NOPE"}, exitError, `cluster "NOPE": not found`},
		{[]string{"help"}, exitOK, "Exit codes: 0 ok, 1 error, 2 usage."},
	}
	for _, tc := range cases {
		code, stdout, stderr := kayoctl(t, nil, tc.args...)
		got := stderr
		if tc.code == exitOK {
			got = stdout
		}
		if code != tc.code || !strings.Contains(got, tc.want) {
			t.Errorf("kayoctl %q: exit %d, want %d; output %q, want it to contain %q", tc.args, code, tc.code, got, tc.want)
		}
	}
}

func TestStatusHostFailRecoverEvents(t *testing.T) {
	dir := newDataDir(t, 10)
	env := map[string]string{"KAYO_DATA_DIR": dir}

	code, out, errs := kayoctl(t, env, "status")
	if code != 0 {
		t.Fatalf("status: %d %s", code, errs)
	}
	for _, want := range []string{
		"Cluster HVCLUSTER at 192.0.2.50/24 (heartbeat timeout 10s)",
		"node_majority (implicit: no kayo_quorum)",
		"3 of 3 votes present, 2 needed, tolerates 1 node failure: has quorum",
		"Leader  none (no agent has run)",
		"Y-22-2k8x64   up          1   32768 MB   0 MB   30720 MB   never (no agent)   none",
		"Hosts in no cluster",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("colour codes written to a non-terminal")
	}

	// Fail two of three: quorum is lost.
	for _, n := range []string{"Y-22-2k8x64", "Y-23-2k8x64"} {
		if code, out, errs = kayoctl(t, env, "host", "fail", n); code != 0 {
			t.Fatalf("host fail %s: %d %s", n, code, errs)
		}
	}
	if !strings.Contains(out, "1 of 3 votes present, 2 needed, tolerates 1 node failure: QUORUM LOST") {
		t.Errorf("host fail output: %s", out)
	}
	if _, out, _ = kayoctl(t, env, "host", "fail", "Y-23-2k8x64"); !strings.Contains(out, "was already down (lab)") {
		t.Errorf("second fail: %s", out)
	}
	var st statusJSON
	_, out, _ = kayoctl(t, env, "status", "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Clusters) != 1 || st.Clusters[0].Quorum.HasQuorum || st.Clusters[0].Quorum.VotesPresent != 1 ||
		st.Clusters[0].Nodes[1].State != "down" || st.Clusters[0].Nodes[1].Votes != 0 || len(st.Unclustered) != 1 {
		t.Errorf("status --json: %+v", st)
	}
	var qs []quorumJSON
	_, out, _ = kayoctl(t, env, "quorum", "--json")
	if err := json.Unmarshal([]byte(out), &qs); err != nil || len(qs) != 1 || qs[0].HasQuorum || qs[0].TotalVotes != 3 {
		t.Errorf("quorum --json: %v %+v", err, qs)
	}
	if _, out, _ = kayoctl(t, env, "quorum"); !strings.Contains(out, "HVCLUSTER   node_majority   -         1/3        1/3     2        1           LOST") {
		t.Errorf("quorum table:\n%s", out)
	}
	if code, out, _ = kayoctl(t, env, "host", "recover", "Y-22-2k8x64"); code != 0 || !strings.Contains(out, "has quorum") {
		t.Errorf("recover: %s", out)
	}

	var evs []eventJSON
	_, out, _ = kayoctl(t, env, "events", "--json", "--cluster", "HVCLUSTER")
	if err := json.Unmarshal([]byte(out), &evs); err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, ev := range evs {
		if i > 0 && ev.Revision < evs[i-1].Revision {
			t.Errorf("events out of revision order: %d after %d", ev.Revision, evs[i-1].Revision)
		}
		got = append(got, ev.Kind+" "+ev.Subject)
	}
	want := "cluster.formed HVCLUSTER; host.down Y-22-2k8x64; host.down Y-23-2k8x64; quorum.lost HVCLUSTER; " +
		"host.up Y-22-2k8x64; quorum.regained HVCLUSTER"
	if strings.Join(got, "; ") != want {
		t.Errorf("events:\n got %s\nwant %s", strings.Join(got, "; "), want)
	}
	if _, out, _ = kayoctl(t, env, "events", "--kind", "quorum."); !strings.Contains(out, "quorum.lost") ||
		strings.Contains(out, "host.down") || !strings.HasPrefix(out, "REV") {
		t.Errorf("events --kind quorum.:\n%s", out)
	}
}

func TestColour(t *testing.T) {
	p := painter(true)
	if got := p.state("down"); got != "\x1b[31mdown\x1b[0m" {
		t.Errorf("down painted %q", got)
	}
	var b bytes.Buffer
	if colorOK(&b, func(string) string { return "" }) {
		t.Error("colour for a buffer")
	}
	if colorOK(os.Stdout, func(k string) string { return map[string]string{"NO_COLOR": "1"}[k] }) {
		t.Error("colour despite NO_COLOR")
	}
	st := statusJSON{Clusters: []clusterJSON{{Name: "C", Quorum: quorumJSON{Type: "node_majority"},
		Nodes: []nodeJSON{{Name: "N1", State: "down", DownReason: "lab", MemoryMB: 512}}}}}
	printStatus(&b, st, true, time.Now())
	if !strings.Contains(b.String(), "\x1b[31mdown\x1b[0m (lab)") || !strings.Contains(b.String(), "QUORUM LOST") {
		t.Errorf("coloured status:\n%q", b.String())
	}
}

// A node whose agent runs QEMU VMs shows their accelerator (kvm or tcg);
// status without QEMU executors has no such column.
func TestStatusShowsAccel(t *testing.T) {
	st := statusJSON{Clusters: []clusterJSON{{Name: "C", Quorum: quorumJSON{Type: "node_majority"},
		Nodes: []nodeJSON{{Name: "N1", State: "up", MemoryMB: 512, Accel: "tcg"}, {Name: "N2", State: "up", MemoryMB: 512, Accel: "kvm"}}}}}
	var b bytes.Buffer
	printStatus(&b, st, false, time.Now())
	if !regexp.MustCompile(`(?m)ACCEL$`).MatchString(b.String()) || !regexp.MustCompile(`(?m)^  N1 .* tcg$`).MatchString(b.String()) ||
		!regexp.MustCompile(`(?m)^  N2 .* kvm$`).MatchString(b.String()) {
		t.Errorf("status with QEMU agents:\n%s", b.String())
	}
	st.Clusters[0].Nodes[0].Accel, st.Clusters[0].Nodes[1].Accel = "", ""
	b.Reset()
	printStatus(&b, st, false, time.Now())
	if strings.Contains(b.String(), "ACCEL") {
		t.Errorf("status without QEMU agents:\n%s", b.String())
	}
}
