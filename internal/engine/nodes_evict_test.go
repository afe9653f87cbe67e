package engine

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

const y24 = "Y-24-2k8x64"

func clusterNodesAre(t *testing.T, e *Engine, want ...string) {
	t.Helper()
	c, err := e.GetCluster(context.Background(), "HVCLUSTER")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Nodes, want) {
		t.Fatalf("cluster nodes %v, want %v", c.Nodes, want)
	}
}

// TestEvictNode: evicting a node drains it, removes it from the node list
// and releases its volume mount, as removing it from nodes does; a down
// node whose VMs failed over is evicted the same way; an eviction that
// would lose quorum, or of the last node, is refused with nothing changed.
func TestEvictNode(t *testing.T) {
	ctx := context.Background()
	e, vol := vmEnv(t, seedSpec(y21, 21), seedSpec(y22, 22), seedSpec(y23, 23), seedSpec(y24, 24))
	web := vmSpec(vol, "WEB01", 4096)
	web.PreferredOwners = []string{y21}
	mustVM(t, e, web)
	if vm := getVM(t, e, "WEB01"); vm.Node != y21 {
		t.Fatalf("WEB01 on %s, want %s", vm.Node, y21)
	}
	if _, err := e.MarkHostDown(ctx, y24, DownByLab); err != nil {
		t.Fatal(err)
	}

	p, err := e.PlanEviction(ctx, y21)
	if err != nil || p.Cluster != "HVCLUSTER" || len(p.Moves) != 1 || p.Moves[0].VM != "WEB01" ||
		p.After.TotalVotes != 3 || p.After.VotesPresent != 2 || !p.After.HasQuorum {
		t.Fatalf("PlanEviction(%s) = %+v, %v", y21, p, err)
	}
	if cl, err := e.EvictNode(ctx, y21); err != nil || cl != "HVCLUSTER" {
		t.Fatalf("EvictNode(%s) = %q, %v", y21, cl, err)
	}
	clusterNodesAre(t, e, y22, y23, y24)
	if vm := getVM(t, e, "WEB01"); vm.Node != y22 && vm.Node != y23 {
		t.Fatalf("WEB01 on %s after the eviction", vm.Node)
	}
	if h, _ := e.GetHost(ctx, y21); h.Cluster != "" {
		t.Fatalf("%s still a node of %q", y21, h.Cluster)
	}
	v, err := e.GetVolume(ctx, vol.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := v.Mounts[y21]; ok || len(v.Mounts) != 3 {
		t.Fatalf("mounts after the eviction: %v", v.Mounts)
	}
	if err := e.DeleteHost(ctx, y21); err != nil {
		t.Fatalf("DeleteHost after the eviction: %v", err)
	}
	// Evicting another up node leaves y23 alone with y24 down: refused.
	if _, err := e.PlanEviction(ctx, y22); !errors.Is(err, ErrQuorumLost) {
		t.Fatalf("PlanEviction(%s) with %s down: %v, want quorum lost", y22, y24, err)
	}
	if _, err := e.EvictNode(ctx, y22); !errors.Is(err, ErrQuorumLost) ||
		!strings.Contains(err.Error(), "would leave cluster \"HVCLUSTER\" without quorum") {
		t.Fatalf("EvictNode(%s) with %s down: %v, want quorum lost", y22, y24, err)
	}
	clusterNodesAre(t, e, y22, y23, y24)
	// The dead node goes without force.
	if _, err := e.EvictNode(ctx, y24); err != nil {
		t.Fatalf("EvictNode(down %s): %v", y24, err)
	}
	clusterNodesAre(t, e, y22, y23)
	q, err := e.GetQuorum(ctx, "HVCLUSTER")
	if err != nil || !q.Status.HasQuorum || q.Status.TotalVotes != 2 || len(q.Status.Down) != 0 {
		t.Fatalf("quorum after evicting the dead node: %+v %v", q.Status, err)
	}
	// A host that is no node: nothing to evict.
	if cl, err := e.EvictNode(ctx, y24); err != nil || cl != "" {
		t.Fatalf("EvictNode(no node) = %q, %v", cl, err)
	}
	// The last node cannot be evicted: the cluster goes first.
	if _, err := e.EvictNode(ctx, y23); err != nil {
		t.Fatal(err)
	}
	if _, err := e.EvictNode(ctx, y22); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "last node") {
		t.Fatalf("EvictNode(last node): %v", err)
	}
	clusterNodesAre(t, e, y22)
}

// TestHypervisorChangeRefusedWhileVMsRun: the runtime of running guests
// cannot change under them; nothing is changed by the refusal.
func TestHypervisorChangeRefusedWhileVMsRun(t *testing.T) {
	ctx := context.Background()
	e, vol := vmEnv(t)
	mustVM(t, e, vmSpec(vol, "WEB01", 2048))
	c, err := e.GetCluster(ctx, "HVCLUSTER")
	if err != nil {
		t.Fatal(err)
	}
	s := c.ClusterSpec
	s.Hypervisor = HypervisorQEMU
	_, err = e.UpdateCluster(ctx, s)
	var ie *InputError
	if !errors.As(err, &ie) || ie.Attribute != "hypervisor" || !strings.Contains(err.Error(), "WEB01") {
		t.Fatalf("UpdateCluster(hypervisor qemu) with WEB01 running: %v", err)
	}
	if err := e.CheckHypervisorChange(ctx, "HVCLUSTER", HypervisorQEMU); !errors.As(err, &ie) {
		t.Fatalf("CheckHypervisorChange: %v", err)
	}
	if c2, _ := e.GetCluster(ctx, "HVCLUSTER"); c2.Hypervisor != HypervisorSimulator || c2.Revision != c.Revision {
		t.Fatalf("cluster changed by the refusal: %+v", c2)
	}
	if err := e.CheckHypervisorChange(ctx, "HVCLUSTER", HypervisorSimulator); err != nil {
		t.Fatalf("no change: %v", err)
	}
}

// TestForceDestroyResetsQuorumWithNodeDown: two nodes and a file-share
// witness, one node dead: the quorum reset is refused naming
// force_destroy; the flag is set without quorum checks or validation;
// then the reset and the cluster's destroy go through, hosts kept.
func TestForceDestroyResetsQuorumWithNodeDown(t *testing.T) {
	ctx := context.Background()
	e := newMem(t)
	mustHosts(t, e, seedSpec(y21, 21), seedSpec(y22, 22))
	if _, err := e.CreateCluster(ctx, seedCluster("HVCLUSTER", y21, y22)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateQuorum(ctx, QuorumSpec{Cluster: "HVCLUSTER", Type: "node_and_file_share_majority",
		WitnessShare: `\\fs01\witness`}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.MarkHostDown(ctx, y22, DownByLab); err != nil {
		t.Fatal(err)
	}
	err := e.ResetQuorum(ctx, "HVCLUSTER")
	var fe *ForceRequiredError
	if !errors.As(err, &fe) || !errors.Is(err, ErrQuorumLost) || !strings.Contains(err.Error(), "force_destroy = true") {
		t.Fatalf("ResetQuorum with %s down: %v", y22, err)
	}
	if q, _ := e.GetQuorum(ctx, "HVCLUSTER"); !q.Managed {
		t.Fatal("the refused reset dropped the quorum record")
	}
	if forced, err := e.PlanQuorumReset(ctx, "HVCLUSTER"); forced || !errors.As(err, &fe) {
		t.Fatalf("PlanQuorumReset without force_destroy: %v %v", forced, err)
	}
	c, err := e.GetCluster(ctx, "HVCLUSTER")
	if err != nil {
		t.Fatal(err)
	}
	s := c.ClusterSpec
	s.ForceDestroy = true
	if c2, err := e.UpdateCluster(ctx, s); err != nil || !c2.ForceDestroy {
		t.Fatalf("setting force_destroy: %+v %v", c2, err)
	}
	if forced, err := e.PlanQuorumReset(ctx, "HVCLUSTER"); !forced || err != nil {
		t.Fatalf("PlanQuorumReset with force_destroy: %v %v", forced, err)
	}
	if err := e.ResetQuorum(ctx, "HVCLUSTER"); err != nil {
		t.Fatalf("forced ResetQuorum: %v", err)
	}
	if q, _ := e.GetQuorum(ctx, "HVCLUSTER"); q.Managed {
		t.Fatal("quorum record still there after the forced reset")
	}
	if err := e.DeleteCluster(ctx, "HVCLUSTER"); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{y21, y22} {
		if got, err := e.GetHost(ctx, h); err != nil || got.Cluster != "" {
			t.Fatalf("host %s after the destroy: %+v %v", h, got, err)
		}
	}
}
