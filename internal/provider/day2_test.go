package provider

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
)

// dbStateCheck runs a database check as a state check: the legacy Check
// functions cannot shim a state holding for_each instances.
type dbStateCheck func(*terraform.State) error

func (c dbStateCheck) CheckState(_ context.Context, _ statecheck.CheckStateRequest, resp *statecheck.CheckStateResponse) {
	resp.Error = c(nil)
}

func dbChecks(fns ...func(*terraform.State) error) []statecheck.StateCheck {
	out := make([]statecheck.StateCheck, len(fns))
	for i, fn := range fns {
		out[i] = dbStateCheck(fn)
	}
	return out
}

// forEachHosts is hosts written with for_each over local.nodes (name =>
// last address octet) feeding kayo_cluster.c's nodes, as users write them.
func forEachHosts(dir string, names map[string]int, extra string) string {
	var b strings.Builder
	b.WriteString(providerBlock(dir))
	b.WriteString("locals {\n  nodes = {\n")
	keys := make([]string, 0, len(names))
	for n := range names {
		keys = append(keys, n)
	}
	slices.Sort(keys)
	for _, n := range keys {
		fmt.Fprintf(&b, "    %q = %d\n", n, names[n])
	}
	b.WriteString(`  }
}
resource "kayo_host" "h" {
  for_each         = local.nodes
  name             = each.key
  address          = "192.0.2.${each.value}"
  os_edition       = "enterprise"
  processor_vendor = "intel"
  processor_model  = "Xeon E5440"
  processor_cores  = 8
  memory_mb        = 32768
  features         = ["Hyper-V", "Failover-Clustering"]
  network_adapters = [
    { name = "Public", network = "192.0.2.0/24", address = "192.0.2.${each.value}" },
    { name = "Heartbeat", network = "10.10.10.0/24", address = "10.10.10.${each.value}" },
  ]
}
resource "kayo_cluster" "c" {
  name           = "HVCLUSTER"
  nodes          = [for n in keys(local.nodes) : kayo_host.h[n].name]
  static_address = "192.0.2.50/24"
`)
	b.WriteString(extra)
	b.WriteString("}\n")
	return b.String()
}

// clusterState asserts the cluster's nodes and quorum in the database.
func clusterState(dir string, nodes []string, total, needed int) func(*terraform.State) error {
	return dbCheck(dir, func(ctx context.Context, e *engine.Engine) error {
		c, err := e.GetCluster(ctx, "HVCLUSTER")
		if err != nil {
			return err
		}
		if !slices.Equal(c.Nodes, nodes) {
			return fmt.Errorf("cluster nodes are %v, want %v", c.Nodes, nodes)
		}
		q, err := e.GetQuorum(ctx, "HVCLUSTER")
		if err != nil {
			return err
		}
		if !q.Status.HasQuorum || q.Status.TotalVotes != total || q.Status.VotesNeeded != needed || q.Status.Nodes != len(nodes) {
			return fmt.Errorf("quorum is %+v, want %d nodes, %d votes, %d needed, with quorum", q.Status, len(nodes), total, needed)
		}
		return nil
	})
}

// hostGone asserts that name is no longer registered.
func hostGone(dir, name string) func(*terraform.State) error {
	return dbCheck(dir, func(ctx context.Context, e *engine.Engine) error {
		if _, err := e.GetHost(ctx, name); !errors.Is(err, engine.ErrNotFound) {
			return fmt.Errorf("host %s: want not found, got %v", name, err)
		}
		return nil
	})
}

// Dropping one host from the for_each that feeds kayo_cluster.nodes
// shrinks the cluster in one apply: Terraform destroys the host before it
// updates the cluster, and the host's destroy evicts the node.
func TestAccCluster_shrinkByForEach(t *testing.T) {
	dir := t.TempDir()
	five := map[string]int{"HV-01": 21, "HV-02": 22, "HV-03": 23, "HV-04": 24, "HV-05": 25}
	four := map[string]int{"HV-01": 21, "HV-02": 22, "HV-03": 23, "HV-04": 24}
	three := map[string]int{"HV-01": 21, "HV-02": 22, "HV-03": 23}
	quorum := quorumHCL("q", "node_majority")
	vol := volumeHCL("o", `lun = "lun0"`, `size_gib = 4`, `label = "VMSTORE"`, `drive_letter = "O"`, `node_slots = 8`)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{
				Config: forEachHosts(dir, five, "") + quorum + vol,
				ConfigStateChecks: dbChecks(
					clusterState(dir, []string{"HV-01", "HV-02", "HV-03", "HV-04", "HV-05"}, 5, 3),
					volumeIs(dir, "O", mountCount(5))),
			},
			{
				Config: forEachHosts(dir, four, "") + quorum + vol,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(`kayo_host.h["HV-05"]`, plancheck.ResourceActionDestroy),
						plancheck.ExpectResourceAction("kayo_cluster.c", plancheck.ResourceActionUpdate),
						plancheck.ExpectResourceAction("kayo_quorum.q", plancheck.ResourceActionNoop),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: dbChecks(
					clusterState(dir, []string{"HV-01", "HV-02", "HV-03", "HV-04"}, 4, 3),
					hostGone(dir, "HV-05"),
					volumeIs(dir, "O", mountCount(4))),
			},
			{
				// Refreshed, the quorum's figures follow; nothing to change.
				Config:            forEachHosts(dir, four, "") + quorum + vol,
				ConfigPlanChecks:  resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
				ConfigStateChecks: figures("kayo_quorum.q", 4, 3, 1, true),
			},
			{
				// HV-04 dies for good (it runs no VM here): dropping it
				// from the for_each evicts the down node in one apply, no
				// force needed while the others keep quorum.
				PreConfig: func() { setDown(t, dir, true, "HV-04") },
				Config:    forEachHosts(dir, three, "") + quorum + vol,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(`kayo_host.h["HV-04"]`, plancheck.ResourceActionDestroy),
						plancheck.ExpectResourceAction("kayo_cluster.c", plancheck.ResourceActionUpdate),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: dbChecks(
					clusterState(dir, []string{"HV-01", "HV-02", "HV-03"}, 3, 2),
					hostGone(dir, "HV-04"),
					volumeIs(dir, "O", mountCount(3))),
			},
			{
				// Torn down in this step: terraform-plugin-testing cannot
				// read back a state holding for_each instances after the
				// last step (state_shim.go), so none may be left.
				Config:            providerBlock(dir),
				ConfigStateChecks: dbChecks(noClusters(dir)),
			},
		},
	})
}

// A two-node cluster with a file-share witness whose node Y-22 is dead for
// good: destroying it is refused at the quorum, naming force_destroy;
// with force_destroy = true applied first, the destroy goes through.
func TestAccCluster_forceDestroyWithDeadNode(t *testing.T) {
	dir := t.TempDir()
	share := quorumHCL("q", "node_and_file_share_majority", `  witness_share = "\\\\fs01\\witness"`)
	base := twoNodeCluster(dir) + share
	forced := strings.Replace(base, "  static_address =", "  force_destroy = true\n  static_address =", 1)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{Config: base, Check: quorumIs(dir, "node_and_file_share_majority", true)},
			{
				// Y-22 dies: the witness keeps the cluster's quorum (2 of 3).
				PreConfig:   func() { setDown(t, dir, true, "Y-22-2k8x64") },
				Config:      base,
				Destroy:     true,
				ExpectError: errRe(`would leave cluster "HVCLUSTER" without quorum (1 of 2 votes present, 2 needed; down: Y-22-2k8x64); refused. If the down nodes are gone for good and the cluster is to be torn down, set force_destroy = true on its kayo_cluster, apply, then destroy again`),
			},
			{
				// Nothing went: the quorum and both nodes are as they were.
				Config: forced,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("kayo_cluster.c", plancheck.ResourceActionUpdate),
					plancheck.ExpectResourceAction("kayo_quorum.q", plancheck.ResourceActionNoop),
				}},
				Check: resource.ComposeTestCheckFunc(
					quorumIs(dir, "node_and_file_share_majority", true),
					resource.TestCheckResourceAttr("kayo_cluster.c", "force_destroy", "true"),
					resource.TestCheckResourceAttr("kayo_cluster.c", "nodes.#", "2"),
				),
			},
			{
				Config:  forced,
				Destroy: true,
				Check:   resource.ComposeTestCheckFunc(noClusters(dir)),
			},
		},
		CheckDestroy: noClusters(dir),
	})
}

// Changing hypervisor while a VM runs is refused at plan time, naming the
// attribute, the VM and what to do; with the VM off it goes through.
func TestAccCluster_hypervisorChangeWhileVMsRun(t *testing.T) {
	dir := t.TempDir()
	hosts := seedHost("y21", "Y-21-2k8x64", 21).hcl() + seedHost("y22", "Y-22-2k8x64", 22).hcl()
	cluster := func(hv string) string {
		return strings.Replace(clusterHCL("HVCLUSTER", "192.0.2.50/24", "y21", "y22"), "  static_address =",
			fmt.Sprintf("  hypervisor = %q\n  static_address =", hv), 1)
	}
	vol := volumeHCL("o", `lun = "lun0"`, `size_gib = 4`, `label = "VMSTORE"`, `drive_letter = "O"`)
	vm := func(state string) string {
		return strings.Replace(vmHCL("${kayo_shared_volume.o.id}", "WEB01", vhd(4, "dynamic"), fmt.Sprintf("state = %q", state)),
			`cluster_id = "HVCLUSTER"`, `cluster_id = kayo_cluster.c.id`, 1)
	}
	base := providerBlock(dir) + hosts + vol
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{Config: base + cluster("simulator") + vm("running")},
			{
				Config:      base + cluster("qemu") + vm("running"),
				PlanOnly:    true,
				ExpectError: errRe(`hypervisor: cannot change from "simulator" to "qemu" while VMs run on cluster "HVCLUSTER": WEB01 (their guests run in the simulator runtime, which qemu can neither see nor migrate from). Set state = "off" on those VMs (or destroy them) and apply, then change hypervisor`),
			},
			{
				// The refusal changed nothing.
				Config:           base + cluster("simulator") + vm("running"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			},
		},
	})
}

// A host destroyed while the cluster's configuration still lists it (a
// literal name) does not vanish silently: the apply evicts it (the plan
// warned), the next plan shows the cluster adding it back, and that apply
// fails naming the unregistered host until it leaves nodes.
func TestAccCluster_destroyedHostStillListed(t *testing.T) {
	dir := t.TempDir()
	hosts := []hostOpts{seedHost("y21", "Y-21-2k8x64", 21), seedHost("y22", "Y-22-2k8x64", 22), seedHost("y23", "Y-23-2k8x64", 23)}
	cfg := func(keep int, nodes ...string) string {
		b := providerBlock(dir)
		var deps []string
		for _, h := range hosts[:keep] {
			b += h.hcl()
			deps = append(deps, "kayo_host."+h.res)
		}
		return b + fmt.Sprintf("resource \"kayo_cluster\" \"c\" {\n  name = \"HVCLUSTER\"\n  nodes = [%s]\n  static_address = \"192.0.2.50/24\"\n  depends_on = [%s]\n}\n",
			quoteList(nodes), strings.Join(deps, ", "))
	}
	all := []string{"Y-21-2k8x64", "Y-22-2k8x64", "Y-23-2k8x64"}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{Config: cfg(3, all...)},
			{
				Config: cfg(2, all...),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("kayo_host.y23", plancheck.ResourceActionDestroy),
					plancheck.ExpectResourceAction("kayo_cluster.c", plancheck.ResourceActionNoop),
				}},
				ExpectNonEmptyPlan: true,
				Check:              clusterState(dir, all[:2], 2, 2),
			},
			{
				Config:      cfg(2, all...),
				ExpectError: errRe(`node "Y-23-2k8x64" is not a registered host; every node must be a registered kayo_host`),
			},
			{
				Config: cfg(2, all[:2]...),
				Check:  clusterState(dir, all[:2], 2, 2),
			},
		},
	})
}
