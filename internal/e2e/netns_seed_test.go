//go:build linux

package e2e

import (
	"bytes"
	"context"
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/etcdtest"
	"github.com/kayo-labs/terraform-provider-kayo/internal/netnsrig"
	"github.com/kayo-labs/terraform-provider-kayo/internal/nodeagent/workexec"
	"github.com/kayo-labs/terraform-provider-kayo/internal/qemutest"
	"github.com/kayo-labs/terraform-provider-kayo/internal/testcli"
)

// nsAgent is a `kayoctl agent` running inside one host's namespace.
type nsAgent struct {
	node string
	cmd  *exec.Cmd
	mu   sync.Mutex
	buf  bytes.Buffer
}

func (a *nsAgent) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.buf.Write(p)
}

func (a *nsAgent) log() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.buf.String()
}

// seedConfig is the seed's configuration (two hosts, the cluster, its
// quorum, O: and WEB01) on the qemu hypervisor, for a provider that names
// no data_dir: the database is the etcd of KAYO_ETCD_ENDPOINTS.
func seedConfig(lun, owner string) string {
	return fmt.Sprintf(`terraform {
  required_providers {
    kayo = { source = %q }
  }
}

provider "kayo" {
  lock_timeout = "60s"
}
`, testcli.KayoSource) + hostBlock("y21", y21, 21) + hostBlock("y22", y22, 22) + fmt.Sprintf(`
resource "kayo_cluster" "c" {
  name                      = "HVCLUSTER"
  nodes                     = [kayo_host.y21.name, kayo_host.y22.name]
  static_address            = "192.0.2.50/24"
  hypervisor                = "qemu"
  heartbeat_timeout_seconds = 10
}

resource "kayo_quorum" "q" {
  cluster_id    = kayo_cluster.c.id
  type          = "node_and_file_share_majority"
  witness_share = "\\\\FS01\\witness"
}

resource "kayo_shared_volume" "o" {
  cluster_id   = kayo_quorum.q.id
  lun          = %q
  file_backed  = true
  size_gib     = 8
  label        = "VMSTORE"
  drive_letter = "O"
  node_slots   = 8
}

resource "kayo_virtual_machine" "web" {
  cluster_id       = kayo_cluster.c.id
  volume_id        = kayo_shared_volume.o.id
  name             = "WEB01"
  memory_mb        = 128
  processor_count  = 1
  vhd              = { size_gib = 1, type = "dynamic" }
  network_adapters = []
  owner_node       = %q
  migration        = "live"
}
`, lun, owner)
}

// seedRig is the seed's two hosts as network namespaces on three bridges
// (Public, Heartbeat, and Database, which the machine's own stack joins
// to serve etcd), each host with its own `kayoctl agent`, and a working
// directory outside every host whose CLI reaches only etcd.
//
// The SAN LUN exists only inside the hosts: each agent runs in its own
// mount namespace (`ip netns exec` makes one) where the LUN's directory
// is bind-mounted over lun's; outside, that directory is empty, so the
// provider could not open the LUN if it tried.
type seedRig struct {
	t         *testing.T
	base, lun string
	lunStore  string // the LUN's directory, bind-mounted at lun's inside the hosts
	bin       string
	guest     string
	endpoints string
	dbNet     string
	hosts     map[string]*netnsrig.Host
	agents    map[string]*nsAgent
	cli       testcli.CLI
	mirror    *testcli.Mirror
}

func newSeedRig(t *testing.T, cli testcli.CLI) *seedRig {
	t.Helper()
	r := &seedRig{t: t, cli: cli, guest: qemutest.Guest(t), hosts: map[string]*netnsrig.Host{}, agents: map[string]*nsAgent{}}
	// A random /24 of 198.18.0.0/15 (benchmarking addresses) keeps
	// concurrent rigs apart; 192.0.2.0/24 may be the machine's own network
	// (it is here), so the machine joins only the Database network.
	r.dbNet = fmt.Sprintf("198.18.%d", mrand.IntN(256))
	rig := netnsrig.New(t, "Public", "Heartbeat", "Database")
	rig.Gateway("Database", netip.MustParsePrefix(r.dbNet+".1/24"))
	etcd := etcdtest.Start(t, etcdtest.Options{ListenIP: r.dbNet + ".1"})
	r.endpoints = strings.Join(etcd.Endpoints(), ",")
	r.bin = testcli.Build(t, "./cmd/kayoctl")
	r.base = t.TempDir()
	r.lun = filepath.Join(r.base, "san", "lun0.img")
	r.lunStore = filepath.Join(r.base, "san-store")
	for _, d := range []string{filepath.Dir(r.lun), r.lunStore} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(r.lunStore, filepath.Base(r.lun))
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 8<<30); err != nil {
		t.Fatal(err)
	}
	for i, n := range []string{y21, y22} {
		octet := 21 + i
		r.hosts[n] = rig.AddHost(n, map[string]netip.Prefix{
			"Public":    netip.MustParsePrefix(fmt.Sprintf("192.0.2.%d/24", octet)),
			"Heartbeat": netip.MustParsePrefix(fmt.Sprintf("10.10.10.%d/24", octet)),
			"Database":  netip.MustParsePrefix(fmt.Sprintf("%s.%d/24", r.dbNet, octet)),
		})
		if err := os.MkdirAll(filepath.Join(r.base, "host-"+n), 0o700); err != nil {
			t.Fatal(err)
		}
		r.startAgent(n)
	}
	r.mirror = testcli.NewMirror(t, testcli.KayoProvider(t))
	return r
}

// startAgent starts node's agent in its namespace and waits until its
// QEMU executor accepts VMs.
func (r *seedRig) startAgent(node string) {
	t := r.t
	t.Helper()
	octet := 21
	if node == y22 {
		octet = 22
	}
	a := &nsAgent{node: node}
	// The declared hosts are the seed's Xeons, not this machine: no facts
	// reported. Probes run (each host has its own addresses).
	a.cmd = r.onHost(node, "agent", "--node", node, "--interval", "250ms", "--report-facts=false",
		"--migration-address", fmt.Sprintf("192.0.2.%d", octet))
	a.cmd.Env = append(os.Environ(), "KAYO_ETCD_ENDPOINTS="+r.endpoints,
		"KAYO_DATA_DIR="+filepath.Join(r.base, "host-"+node), "KAYO_QEMU_GUEST_DIR="+r.guest, "NO_COLOR=1")
	a.cmd.Stdout, a.cmd.Stderr = a, a
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.agents[node] = a
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent %s (pid %d) log:\n%s", a.node, a.cmd.Process.Pid, tailLines(a.log(), 40))
		}
		_ = a.cmd.Process.Kill()
		_ = a.cmd.Wait()
	})
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(a.log(), "qemu: accepting VMs") {
		if time.Now().After(deadline) {
			t.Fatalf("agent %s not ready within 60 s:\n%s", node, tailLines(a.log(), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// onHost is kayoctl args run on node: in its network namespace and in a
// mount namespace of its own (ip netns exec's) that has the SAN.
func (r *seedRig) onHost(node string, args ...string) *exec.Cmd {
	return r.hosts[node].Command("sh", append([]string{"-c", `mount --bind "$0" "$1" && shift && exec "$@"`,
		r.lunStore, filepath.Dir(r.lun), r.bin}, args...)...)
}

// workdir is a fresh working directory under the rig whose CLI has only
// KAYO_ETCD_ENDPOINTS.
func (r *seedRig) workdir(name string) *testcli.Workdir {
	dir := filepath.Join(r.base, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.t.Fatal(err)
	}
	w := testcli.NewWorkdir(r.cli, dir, r.mirror)
	w.Env = append(w.Env, "KAYO_ETCD_ENDPOINTS="+r.endpoints)
	return w
}

// engine opens the cluster database as the test's own client.
func (r *seedRig) engine() *engine.Engine {
	e, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: filepath.Join(r.base, "test-client"),
		Etcd: &store.EtcdOptions{Endpoints: strings.Split(r.endpoints, ",")}})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = e.Close() })
	return e
}

// TestSeedAcrossNamespaces runs the seed's configuration on hosts that are
// network namespaces, each with its own agent, the cluster database an
// etcd the provider reaches on its own network: the provider runs outside
// every host. WEB01 live-migrates between the namespaces (QEMU's migration
// stream goes from one host's address to the other's), the next plan is
// empty, and so is a plan from a fresh directory that has only the
// configuration, the state and KAYO_ETCD_ENDPOINTS.
// checkSlotsFree fails unless every slot of the LUN's Kayo FS is free,
// read from the LUN's store outside the hosts' namespaces.
func (r *seedRig) checkSlotsFree(t *testing.T) {
	t.Helper()
	fd, err := kayofs.OpenDevice(filepath.Join(r.lunStore, filepath.Base(r.lun)))
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	slots, err := kayofs.Slots(fd)
	if err != nil {
		t.Fatalf("reading the LUN's slots after the destroy: %v", err)
	}
	for _, s := range slots {
		if s.State != "free" {
			t.Errorf("after the destroy slot %d is %s (node %q), want free", s.Slot, s.State, s.Node)
		}
	}
}

func TestSeedAcrossNamespaces(t *testing.T) {
	if testing.Short() {
		t.Skip("QEMU across network namespaces")
	}
	for _, cli := range testcli.CLIs(t) {
		t.Run(cli.Name, func(t *testing.T) { seedAcrossNamespaces(t, cli) })
	}
}

func seedAcrossNamespaces(t *testing.T, cli testcli.CLI) {
	r := newSeedRig(t, cli)
	if _, err := os.Stat(r.lun); err == nil {
		t.Fatalf("the LUN %s is visible outside the hosts' namespaces", r.lun)
	}
	w := r.workdir("work")
	ctx, cancel := context.WithTimeout(context.Background(), 240*time.Second)
	defer cancel()
	if err := w.WriteFile("main.tf", seedConfig(r.lun, y21)); err != nil {
		t.Fatal(err)
	}
	testcli.Must(t, w.Init(ctx))
	testcli.Must(t, w.Apply(ctx))
	// Deferred, not a cleanup: it must run before the agents' cleanups
	// stop them (restarted agents register theirs later).
	defer func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer dcancel()
		if r := w.Destroy(dctx); r.Err != nil {
			t.Errorf("destroy: %v", r.Err)
			return
		}
		// The volume was destroyed by the nodes' agents, not only
		// forgotten by the provider, which cannot see the LUN: every
		// node's slot on it is free.
		r.checkSlotsFree(t)
	}()
	pid := webPID(t, r.hosts[y21])
	t.Logf("WEB01 runs in %s's namespace (QEMU pid %d)", y21, pid)

	// The live migration by owner_node: the target QEMU runs in Y-22's
	// namespace and the source's is gone.
	if err := w.WriteFile("main.tf", seedConfig(r.lun, y22)); err != nil {
		t.Fatal(err)
	}
	res := testcli.Must(t, w.Apply(ctx))
	if !strings.Contains(res.Stdout, "live-migrated") {
		t.Errorf("the apply that moved WEB01 did not say it live-migrates:\n%s", tailLines(res.Stdout, 30))
	}
	if p := webPIDs(r.hosts[y21]); len(p) != 0 {
		t.Errorf("after the migration, QEMU still runs WEB01 in %s's namespace: %v", y21, p)
	}
	pid2 := webPID(t, r.hosts[y22])
	t.Logf("after the migration WEB01 runs in %s's namespace (QEMU pid %d)", y22, pid2)
	if !strings.Contains(r.agents[y21].log(), "WEB01 live migration completed") {
		t.Errorf("the source agent did not log a completed live migration")
	}

	// The next plan is empty.
	if code := planExit(t, ctx, w); code != 0 {
		t.Fatalf("the plan after the migration is not empty (exit %d)", code)
	}

	// A fresh directory: the configuration and the state, no data_dir,
	// only KAYO_ETCD_ENDPOINTS: the plan is empty.
	st, err := os.ReadFile(filepath.Join(w.Dir, "terraform.tfstate"))
	if err != nil {
		t.Fatal(err)
	}
	f := r.workdir("fresh")
	if err := f.WriteFile("terraform.tfstate", string(st)); err != nil {
		t.Fatal(err)
	}
	if err := f.WriteFile("main.tf", seedConfig(r.lun, y22)); err != nil {
		t.Fatal(err)
	}
	testcli.Must(t, f.Init(ctx))
	if code := planExit(t, ctx, f); code != 0 {
		t.Fatalf("the plan from a fresh directory is not empty (exit %d)", code)
	}
	if _, err := os.Stat(filepath.Join(f.Dir, ".kayo")); err == nil {
		t.Errorf("the plan from a fresh directory made an embedded data dir %s", filepath.Join(f.Dir, ".kayo"))
	}
}

// TestSeedAgentKilledMidMigration SIGKILLs a host's agent while QEMU
// live-migrates WEB01 between the namespaces: first the source's, then,
// moving back, the target's. After the agent restarts the next apply
// converges: WEB01 runs once, on its owner_node, the plan is empty, the
// event history shows one owner at a time and the volume checks clean.
func TestSeedAgentKilledMidMigration(t *testing.T) {
	if testing.Short() {
		t.Skip("QEMU across network namespaces")
	}
	r := newSeedRig(t, testcli.CLIs(t)[0])
	e := r.engine()
	w := r.workdir("work")
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Second)
	defer cancel()
	if err := w.WriteFile("main.tf", seedConfig(r.lun, y21)); err != nil {
		t.Fatal(err)
	}
	testcli.Must(t, w.Init(ctx))
	testcli.Must(t, w.Apply(ctx))
	// Deferred, not a cleanup: it must run before the agents' cleanups
	// stop them (restarted agents register theirs later).
	defer func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer dcancel()
		start := time.Now()
		res := w.Destroy(dctx)
		t.Logf("destroy took %s", time.Since(start).Round(time.Millisecond))
		if res.Err != nil {
			// What it waited on first: the progress lines and the agents'
			// logs (the CLI's whole output follows).
			t.Errorf("destroy failed after %s; its last lines:\n%s", time.Since(start).Round(time.Millisecond), tailLines(res.Stdout, 15))
			for _, n := range []string{y21, y22} {
				t.Errorf("agent %s log:\n%s", n, tailLines(r.agents[n].log(), 25))
			}
			t.Errorf("destroy: %v", res.Err)
		}
	}()
	webPID(t, r.hosts[y21])
	for _, k := range []struct{ from, to, kill string }{{y21, y22, y21}, {y22, y21, y21}} {
		if err := w.WriteFile("main.tf", seedConfig(r.lun, k.to)); err != nil {
			t.Fatal(err)
		}
		applied := make(chan testcli.Result, 1)
		go func() { applied <- w.Apply(ctx) }()
		killed := false
		for !killed {
			select {
			case res := <-applied:
				t.Fatalf("%s → %s: the apply ended before the agent of %s could be killed mid-migration: %v", k.from, k.to, k.kill, res.Err)
			case <-time.After(5 * time.Millisecond):
			}
			vm, err := e.GetVM(ctx, "HVCLUSTER", "WEB01")
			if err != nil || vm.Pending == nil || vm.Pending.Op != "migrate" || vm.Pending.Phase != engine.PhasePrepare {
				continue
			}
			if len(webPIDs(r.hosts[k.to])) == 0 {
				continue // the target is not receiving yet
			}
			a := r.agents[k.kill]
			if err := a.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = a.cmd.Wait()
			killed = true
			t.Logf("%s → %s: killed the agent of %s while the target received WEB01", k.from, k.to, k.kill)
		}
		res := <-applied
		t.Logf("%s → %s: the apply whose agent was killed: %v", k.from, k.to, res.Err)
		r.startAgent(k.kill)
		// The next apply converges (a VM whose memory died with its
		// agent boots again on its owner).
		testcli.Must(t, w.Apply(ctx))
		if p := webPIDs(r.hosts[k.from]); len(p) != 0 {
			t.Errorf("%s → %s: QEMU still runs WEB01 on %s: %v", k.from, k.to, k.from, p)
		}
		webPID(t, r.hosts[k.to])
		if code := planExit(t, ctx, w); code != 0 {
			t.Fatalf("%s → %s: the plan after converging is not empty (exit %d)", k.from, k.to, code)
		}
	}
	checkOwnerChain(t, ctx, e, "WEB01")
	check := r.onHost(y21, "volume", "check", "HVCLUSTER/O")
	check.Env = append(os.Environ(), "KAYO_ETCD_ENDPOINTS="+r.endpoints, "KAYO_DATA_DIR="+filepath.Join(r.base, "test-client"))
	out, err := check.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "no problems") {
		t.Fatalf("kayoctl volume check: %v\n%s", err, out)
	}
	t.Logf("volume check: %s", strings.TrimSpace(string(out)))
}

// checkOwnerChain checks from the event history alone that vm had one
// owner at a time: its vm.owner_changed events chain (from = previous to)
// with tokens growing by one.
func checkOwnerChain(t *testing.T, ctx context.Context, e *engine.Engine, vm string) {
	t.Helper()
	evs, err := e.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var last *engine.Event
	n := 0
	for i, ev := range evs {
		if ev.Kind != engine.EventVMOwnerChanged || ev.Subject != vm {
			continue
		}
		n++
		if last != nil {
			lt, _ := strconv.Atoi(last.Detail["token"])
			nt, _ := strconv.Atoi(ev.Detail["token"])
			if ev.Detail["from"] != last.Detail["to"] || nt != lt+1 {
				t.Errorf("%s: owner change %v after %v: not one owner at a time", vm, ev.Detail, last.Detail)
			}
		}
		last = &evs[i]
	}
	if n < 2 {
		t.Errorf("%s: %d owner changes in the history, want the creation and the moves", vm, n)
	}
	t.Logf("%s: %d owner changes, one owner at a time", vm, n)
}

// planExit runs plan -detailed-exitcode: 0 no changes, 2 changes.
func planExit(t *testing.T, ctx context.Context, w *testcli.Workdir) int {
	t.Helper()
	r := w.Run(ctx, "plan", "-detailed-exitcode", "-input=false", "-no-color")
	if r.Err == nil {
		return 0
	}
	if r.ExitCode == 2 {
		t.Logf("plan:\n%s", tailLines(r.Stdout, 40))
		return 2
	}
	t.Fatalf("plan: %v\n%s\n%s", r.Err, r.Stdout, r.Stderr)
	return -1
}

// webPIDs lists the QEMU processes running WEB01 inside h's namespace.
func webPIDs(h *netnsrig.Host) []int {
	out, _ := exec.Command("ip", "netns", "pids", h.NS).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmd, "qemu-system") && strings.Contains(cmd, "-name WEB01") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// webPID waits for exactly one QEMU process running WEB01 in h's namespace.
func webPID(t *testing.T, h *netnsrig.Host) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		p := webPIDs(h)
		if len(p) == 1 {
			return p[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("want one QEMU running WEB01 in %s's namespace, found %v", h.Name, p)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
