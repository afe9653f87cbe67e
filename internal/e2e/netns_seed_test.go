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

	"github.com/kayo-labs/terraform-provider-kayo/internal/etcdtest"
	"github.com/kayo-labs/terraform-provider-kayo/internal/netnsrig"
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

// TestSeedAcrossNamespaces runs the seed's configuration on hosts that are
// network namespaces on two bridges, each with its own agent, the cluster
// database an etcd on the Public bridge: the provider runs outside every
// host and reaches only etcd. WEB01 live-migrates between the namespaces
// (QEMU's migration stream goes from one host's address to the other's),
// the next plan is empty, and so is a plan from a fresh directory that has
// only the configuration, the state and KAYO_ETCD_ENDPOINTS.
func TestSeedAcrossNamespaces(t *testing.T) {
	if testing.Short() {
		t.Skip("QEMU across network namespaces")
	}
	guest := qemutest.Guest(t)
	// A third network reaches the database: the machine's own stack joins
	// it (192.0.2.0/24 may be the machine's own network, as it is here).
	// A random /24 of 198.18.0.0/15 (benchmarking addresses) keeps
	// concurrent rigs apart.
	dbNet := fmt.Sprintf("198.18.%d", mrand.IntN(256))
	rig := netnsrig.New(t, "Public", "Heartbeat", "Database")
	rig.Gateway("Database", netip.MustParsePrefix(dbNet+".1/24"))
	etcd := etcdtest.Start(t, etcdtest.Options{ListenIP: dbNet + ".1"})
	endpoints := strings.Join(etcd.Endpoints(), ",")
	bin := testcli.Build(t, "./cmd/kayoctl")
	base := t.TempDir()
	lun := filepath.Join(base, "san", "lun0.img")
	if err := os.MkdirAll(filepath.Dir(lun), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lun, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(lun, 8<<30); err != nil {
		t.Fatal(err)
	}
	hosts := map[string]*netnsrig.Host{}
	var agents []*nsAgent
	for i, n := range []string{y21, y22} {
		octet := 21 + i
		h := rig.AddHost(n, map[string]netip.Prefix{
			"Public":    netip.MustParsePrefix(fmt.Sprintf("192.0.2.%d/24", octet)),
			"Heartbeat": netip.MustParsePrefix(fmt.Sprintf("10.10.10.%d/24", octet)),
			"Database":  netip.MustParsePrefix(fmt.Sprintf("%s.%d/24", dbNet, octet)),
		})
		hosts[n] = h
		a := &nsAgent{node: n}
		// The declared hosts are the seed's Xeons, not this machine: no
		// facts reported. Probes run (each host has its own addresses).
		a.cmd = h.Command(bin, "agent", "--node", n, "--interval", "250ms", "--report-facts=false",
			"--migration-address", fmt.Sprintf("192.0.2.%d", octet))
		a.cmd.Env = append(os.Environ(), "KAYO_ETCD_ENDPOINTS="+endpoints,
			"KAYO_DATA_DIR="+filepath.Join(base, "host-"+n), "KAYO_QEMU_GUEST_DIR="+guest, "NO_COLOR=1")
		a.cmd.Stdout, a.cmd.Stderr = a, a
		if err := os.MkdirAll(filepath.Join(base, "host-"+n), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := a.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		agents = append(agents, a)
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("agent %s log:\n%s", a.node, tailLines(a.log(), 40))
			}
			_ = a.cmd.Process.Kill()
			_ = a.cmd.Wait()
		})
	}
	for _, a := range agents {
		deadline := time.Now().Add(60 * time.Second)
		for !strings.Contains(a.log(), "qemu: accepting VMs") {
			if time.Now().After(deadline) {
				t.Fatalf("agent %s not ready within 60 s:\n%s", a.node, tailLines(a.log(), 20))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	cli := testcli.CLIs(t)[0]
	m := testcli.NewMirror(t, testcli.KayoProvider(t))
	work := filepath.Join(base, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	w := testcli.NewWorkdir(cli, work, m)
	w.Env = append(w.Env, "KAYO_ETCD_ENDPOINTS="+endpoints)
	ctx, cancel := context.WithTimeout(context.Background(), 240*time.Second)
	defer cancel()
	if err := w.WriteFile("main.tf", seedConfig(lun, y21)); err != nil {
		t.Fatal(err)
	}
	testcli.Must(t, w.Init(ctx))
	testcli.Must(t, w.Apply(ctx))
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer dcancel()
		if r := w.Destroy(dctx); r.Err != nil {
			t.Errorf("destroy: %v", r.Err)
		}
	})
	pid := webPID(t, hosts[y21])
	t.Logf("WEB01 runs in %s's namespace (QEMU pid %d)", y21, pid)

	// The live migration by owner_node: the target QEMU runs in Y-22's
	// namespace, the source's is gone, and the guest did not reboot (the
	// source's process handed over its memory; a cold boot would show a
	// fresh serial counter on the target).
	if err := w.WriteFile("main.tf", seedConfig(lun, y22)); err != nil {
		t.Fatal(err)
	}
	r := testcli.Must(t, w.Apply(ctx))
	if !strings.Contains(r.Stdout, "live-migrated") {
		t.Errorf("the apply that moved WEB01 did not say it live-migrates:\n%s", tailLines(r.Stdout, 30))
	}
	if p := webPIDs(hosts[y21]); len(p) != 0 {
		t.Errorf("after the migration, QEMU still runs WEB01 in %s's namespace: %v", y21, p)
	}
	pid2 := webPID(t, hosts[y22])
	t.Logf("after the migration WEB01 runs in %s's namespace (QEMU pid %d)", y22, pid2)
	if !strings.Contains(agents[0].log()+agents[1].log(), "192.0.2.22") {
		t.Logf("note: the agents' logs do not name the target's migration address")
	}

	// The next plan is empty.
	if code := planExit(t, ctx, w); code != 0 {
		t.Fatalf("the plan after the migration is not empty (exit %d)", code)
	}

	// A fresh directory: the configuration and the state, no data_dir,
	// only KAYO_ETCD_ENDPOINTS: the plan is empty.
	fresh := filepath.Join(base, "fresh")
	if err := os.MkdirAll(fresh, 0o755); err != nil {
		t.Fatal(err)
	}
	st, err := os.ReadFile(filepath.Join(work, "terraform.tfstate"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fresh, "terraform.tfstate"), st, 0o600); err != nil {
		t.Fatal(err)
	}
	f := testcli.NewWorkdir(cli, fresh, m)
	f.Env = append(f.Env, "KAYO_ETCD_ENDPOINTS="+endpoints)
	if err := f.WriteFile("main.tf", seedConfig(lun, y22)); err != nil {
		t.Fatal(err)
	}
	testcli.Must(t, f.Init(ctx))
	if code := planExit(t, ctx, f); code != 0 {
		t.Fatalf("the plan from a fresh directory is not empty (exit %d)", code)
	}
	if _, err := os.Stat(filepath.Join(fresh, ".kayo")); err == nil {
		t.Errorf("the plan from a fresh directory made an embedded data dir %s", filepath.Join(fresh, ".kayo"))
	}
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
