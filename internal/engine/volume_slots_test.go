package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/etcdtest"
)

// splitOnEtcd opens two engines on one fresh etcd: the control plane
// (its Metrics count what it opens; its data dir holds no LUN) and the
// one the test's node executors run in (agentDir: where the LUNs are).
func splitOnEtcd(t *testing.T) (cp, agents *Engine, m *Metrics, agentDir string) {
	t.Helper()
	c := etcdtest.Start(t, etcdtest.Options{})
	opts := &store.EtcdOptions{Endpoints: c.Endpoints(), Prefix: "/kayo-split/"}
	m = &Metrics{}
	cp, err := openT(Config{DataDir: t.TempDir(), Etcd: opts, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cp.Close() })
	agentDir = t.TempDir()
	agents, err = openT(Config{DataDir: agentDir, Etcd: opts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agents.Close() })
	return cp, agents, m, agentDir
}

// On etcd the nodes' executors claim a joining node's slot, free a
// leaving node's, refuse to delete a volume that holds entries and free
// every slot and the LUN image when it goes; the control plane (its data
// dir holds no LUN) opens no device for any of it.
func TestVolumeSlotsOnEtcdOpenNoDevice(t *testing.T) {
	ctx := context.Background()
	const y23 = "Y-23-2k8x64"
	cp, agents, m, agentDir := splitOnEtcd(t)
	mustHosts(t, cp, seedSpec(y21, 21), seedSpec(y22, 22), seedSpec(y23, 23))
	if _, err := cp.CreateCluster(ctx, seedCluster("HVCLUSTER", y21, y22)); err != nil {
		t.Fatal(err)
	}
	startWorkAgent(t, agents, y21)
	startWorkAgent(t, agents, y22)
	startWorkAgent(t, agents, y23)
	v, err := cp.CreateVolume(ctx, seedVolume())
	if err != nil {
		t.Fatal(err)
	}
	lun := filepath.Join(agentDir, SANDir, "lun0.img")
	// The slots as the agents' host reads them off the LUN.
	slotsOnDisk := func() map[string]int {
		t.Helper()
		av, err := agents.GetVolume(ctx, v.ID)
		if err != nil {
			t.Fatal(err)
		}
		fd, o, err := agents.OpenVolumeMount(av)
		if err != nil {
			t.Fatal(err)
		}
		defer fd.Close()
		slots, err := kayofs.Slots(fd, o)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, s := range slots {
			if s.State != "free" {
				out[s.Node] = s.Slot
			}
		}
		return out
	}

	// Y-23 joins and Y-21 leaves: the executors change the slots.
	if _, err := cp.UpdateCluster(ctx, seedCluster("HVCLUSTER", y22, y23)); err != nil {
		t.Fatal(err)
	}
	v, err = cp.GetVolume(ctx, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	disk := slotsOnDisk()
	if _, ok := v.Mounts[y21]; ok || len(v.Mounts) != 2 || v.Mounts[y23] != disk[y23] || v.Mounts[y22] != disk[y22] {
		t.Fatalf("after the membership change: recorded %v, on disk %v", v.Mounts, disk)
	}
	if _, ok := disk[y21]; ok {
		t.Fatalf("Y-21's slot is still claimed on disk: %v", disk)
	}
	st, err := cp.VolumeState(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	var reported []string
	for _, r := range st.Reports {
		reported = append(reported, r.Node)
	}
	if len(reported) != 2 || reported[0] != y22 || reported[1] != y23 {
		t.Errorf("reports after the change are of %v, want Y-22 and Y-23", reported)
	}

	// A volume that holds an entry is refused without force, unchanged.
	if err := agents.WithVolume(ctx, v.ID, y22, func(fv *kayofs.Volume) error { return fv.Mkdir("ISOs") }); err != nil {
		t.Fatal(err)
	}
	var in *InputError
	if err := cp.DeleteVolume(ctx, v.ID, false); !errors.As(err, &in) || in.Attribute != "force_destroy" {
		t.Fatalf("deleting a volume that holds ISOs: %v, want a force_destroy refusal", err)
	}
	if got := slotsOnDisk(); len(got) != 2 {
		t.Fatalf("a refused delete changed the slots: %v", got)
	}
	if err := cp.DeleteVolume(ctx, v.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.GetVolume(ctx, v.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("the volume's record after its delete: %v", err)
	}
	if _, err := os.Stat(lun); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the LUN image outlives its volume: %v", err)
	}
	if n := m.DevicesOpened(); n != 0 {
		t.Errorf("the control plane opened %d devices", n)
	}
}
