package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/etcdtest"
)

func TestPickFormatNode(t *testing.T) {
	down := func(n string) error { return fmt.Errorf("node %s: %w", n, ErrAgentDown) }
	nodes := []string{"A", "B", "C"}
	cases := []struct {
		name   string
		agents map[string]error
		sees   map[string]bool
		remote bool
		want   string // "" an error naming wantIn
		wantIn []string
	}{
		{"all up: the first", map[string]error{}, nil, true, "A", nil},
		{"first down: the next up", map[string]error{"A": down("A")}, nil, true, "B", nil},
		{"first does not see it", map[string]error{}, map[string]bool{"A": false, "B": true}, true, "B", nil},
		{"seen by reports, first up", map[string]error{"A": down("A")}, map[string]bool{"A": true, "B": true, "C": true}, true, "B", nil},
		{"etcd, none up", map[string]error{"A": down("A"), "B": down("B"), "C": down("C")}, nil, true, "", []string{"node A", "node B", "node C"}},
		{"etcd, the only one up does not see it", map[string]error{"A": down("A"), "B": down("B")}, map[string]bool{"C": false}, true, "",
			[]string{"node C does not see the LUN", "node A"}},
		{"embedded, none up: the first (in-process)", map[string]error{"A": down("A"), "B": down("B"), "C": down("C")}, nil, false, "A", nil},
		{"embedded, none up, first unseen: the next", map[string]error{"A": down("A"), "B": down("B"), "C": down("C")},
			map[string]bool{"A": false}, false, "B", nil},
		{"embedded, none sees it", map[string]error{}, map[string]bool{"A": false, "B": false, "C": false}, false, "",
			[]string{"node A does not see", "node C does not see"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := pickFormatNode(nodes, c.agents, c.sees, c.remote)
			if c.want != "" {
				if err != nil || got != c.want {
					t.Fatalf("got %q, %v; want %q", got, err, c.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("got %q, want an error", got)
			}
			for _, w := range c.wantIn {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	if _, err := pickFormatNode(nil, nil, nil, false); err == nil {
		t.Error("no nodes: no error")
	}
}

// The node picked to format finds no LUN at its device_paths entry: the
// creation is refused naming that node and its path, nothing is
// formatted, and no intent is left.
func TestVolumeFormatRefusedOnNode(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e := openWorkEngine(t, filepath.Join(dir, "data"))
	mustHosts(t, e, seedSpec(y21, 21), seedSpec(y22, 22))
	if _, err := e.CreateCluster(ctx, seedCluster("HVCLUSTER", y21, y22)); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "shared.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 1<<30); err != nil {
		t.Fatal(err)
	}
	before := sha(t, img)
	missing := filepath.Join(dir, "not-here")
	s := VolumeSpec{Cluster: "HVCLUSTER", DevicePaths: map[string]string{y21: missing, y22: img}, SizeGiB: 1, DriveLetter: "O",
		BlockSize: 4096, NodeSlots: 4, FileBacked: true}
	_, err := e.CreateVolume(ctx, s)
	if !isAttr(err, "device_paths") || !strings.Contains(err.Error(), "node "+y21) || !strings.Contains(err.Error(), missing) ||
		!strings.Contains(err.Error(), "nothing was formatted") {
		t.Fatalf("format on a node without the LUN: %v", err)
	}
	if sha(t, img) != before {
		t.Fatal("the LUN was written")
	}
	if _, err := e.st.Get(ctx, volumeIntentKey("HVCLUSTER", "O")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the refused creation left an intent: %v", err)
	}
}

// On etcd the control plane opens no device to create a volume: the
// first node's agent (another engine, with its own data dir holding the
// embedded SAN) formats and mounts it, and the volume's space is read
// from the agents' reports.
func TestVolumeCreateOnEtcdOpensNoDevice(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	ctx := context.Background()
	const prefix = "/kayo-format-agent/"
	m := &Metrics{}
	cp, err := openT(Config{DataDir: t.TempDir(), Etcd: &store.EtcdOptions{Endpoints: c.Endpoints(), Prefix: prefix}, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cp.Close() })
	agentDir := t.TempDir()
	agents, err := openT(Config{DataDir: agentDir, Etcd: &store.EtcdOptions{Endpoints: c.Endpoints(), Prefix: prefix}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agents.Close() })
	mustHosts(t, cp, seedSpec(y21, 21), seedSpec(y22, 22))
	if _, err := cp.CreateCluster(ctx, seedCluster("HVCLUSTER", y21, y22)); err != nil {
		t.Fatal(err)
	}
	// No agent: the error names the nodes and what to start.
	if _, err := cp.CreateVolume(ctx, seedVolume()); !errors.Is(err, ErrAgentDown) || !strings.Contains(err.Error(), "kayoctl agent --node "+y21) {
		t.Fatalf("no agent on etcd: %v", err)
	}
	var log workLog
	agents.workHook = log.hook
	startWorkAgent(t, agents, y22)
	startWorkAgent(t, agents, y21)
	v, err := cp.CreateVolume(ctx, seedVolume())
	if err != nil {
		t.Fatal(err)
	}
	if n := m.DevicesOpened(); n != 0 {
		t.Errorf("the control plane opened %d devices to create a volume on etcd", n)
	}
	if log.count(WorkForAgent, WorkVolumeFormat, "after") != 1 {
		t.Errorf("the agents did not format: %v", log.ran)
	}
	if _, err := os.Stat(filepath.Join(agentDir, SANDir, "lun0.img")); err != nil {
		t.Errorf("the LUN image is not in the agent's data dir: %v", err)
	}
	if _, err := os.Stat(cp.LUNPath("lun0")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the control plane's data dir has a LUN image: %v", err)
	}
	if len(v.Mounts) != 2 {
		t.Errorf("mounts %v", v.Mounts)
	}
	st, err := cp.VolumeState(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	if st.TotalBytes != v.SizeGiB<<30 || st.UsedBytes <= 0 || st.FreeBytes <= 0 || len(st.Reports) != 2 {
		t.Errorf("space from the agents' reports: %+v", st)
	}
	if n := m.DevicesOpened(); n != 0 {
		t.Errorf("the control plane opened %d devices to read a volume on etcd", n)
	}
	// A provider on etcd run from the machine that holds the LUN image
	// reports nothing in the lab's place: the agents report.
	m2 := &Metrics{}
	here, err := openT(Config{DataDir: agentDir, Etcd: &store.EtcdOptions{Endpoints: c.Endpoints(), Prefix: prefix}, Metrics: m2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = here.Close() })
	if err := here.ReportLabVolumes(ctx); err != nil {
		t.Fatal(err)
	}
	if n := m2.DevicesOpened(); n != 0 {
		t.Errorf("the lab's report on etcd opened %d devices", n)
	}
}
