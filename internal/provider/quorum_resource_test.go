package provider

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
)

// quorumHCL is a kayo_quorum named res; witness lines are HCL attributes.
func quorumHCL(res, typ string, witness ...string) string {
	return fmt.Sprintf("resource \"kayo_quorum\" %q {\n  cluster_id = kayo_cluster.c.id\n  type = %q\n%s}\n",
		res, typ, strings.Join(witness, "\n")+"\n")
}

// twoNodeCluster is the seed's two hosts formed into HVCLUSTER.
func twoNodeCluster(dir string) string {
	return providerBlock(dir) + seedHost("y21", "Y-21-2k8x64", 21).hcl() + seedHost("y22", "Y-22-2k8x64", 22).hcl() +
		clusterHCL("HVCLUSTER", "192.0.2.50/24", "y21", "y22")
}

func figures(res string, total, needed, tolerated int64, has bool) []statecheck.StateCheck {
	return []statecheck.StateCheck{
		statecheck.ExpectKnownValue(res, tfjsonpath.New("total_votes"), knownvalue.Int64Exact(total)),
		statecheck.ExpectKnownValue(res, tfjsonpath.New("votes_needed"), knownvalue.Int64Exact(needed)),
		statecheck.ExpectKnownValue(res, tfjsonpath.New("failures_tolerated"), knownvalue.Int64Exact(tolerated)),
		statecheck.ExpectKnownValue(res, tfjsonpath.New("has_quorum"), knownvalue.Bool(has)),
	}
}

// quorumIs asserts the cluster's quorum configuration in the database.
func quorumIs(dir, typ string, managed bool) func(*terraform.State) error {
	return dbCheck(dir, func(ctx context.Context, e *engine.Engine) error {
		q, err := e.GetQuorum(ctx, "HVCLUSTER")
		if err != nil {
			return err
		}
		if q.Type != typ || q.Managed != managed {
			return fmt.Errorf("quorum of HVCLUSTER is %q (managed %v), want %q (managed %v)", q.Type, q.Managed, typ, managed)
		}
		return nil
	})
}

func TestAccQuorum_lifecycle(t *testing.T) {
	dir := t.TempDir()
	base := twoNodeCluster(dir)
	share := quorumHCL("q", "node_and_file_share_majority", `  witness_share = "\\\\fs01\\witness"`)
	disk := quorumHCL("q", "node_and_disk_majority", `  witness_disk = "qwitness"`)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{
				// Without a kayo_quorum the cluster runs node_majority.
				Config: base,
				Check:  quorumIs(dir, "node_majority", false),
			},
			{
				Config: base + share,
				ConfigStateChecks: append(figures("kayo_quorum.q", 3, 2, 1, true),
					statecheck.ExpectKnownValue("kayo_quorum.q", tfjsonpath.New("id"), knownvalue.StringExact("HVCLUSTER")),
					statecheck.ExpectKnownValue("kayo_quorum.q", tfjsonpath.New("witness_share"), knownvalue.StringExact(`\\fs01\witness`)),
				),
				Check: quorumIs(dir, "node_and_file_share_majority", true),
			},
			{
				// Changing the type is in place; the witness LUN is created in the SAN.
				Config: base + disk,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("kayo_quorum.q", plancheck.ResourceActionUpdate),
				}},
				ConfigStateChecks: append(figures("kayo_quorum.q", 3, 2, 1, true),
					statecheck.ExpectKnownValue("kayo_quorum.q", tfjsonpath.New("witness_share"), knownvalue.Null())),
				Check: resource.ComposeTestCheckFunc(
					quorumIs(dir, "node_and_disk_majority", true),
					func(*terraform.State) error {
						fi, err := os.Stat(filepath.Join(dir, "san", "qwitness.img"))
						if err != nil {
							return fmt.Errorf("witness LUN not created: %w", err)
						}
						if fi.Size() != engine.WitnessDiskSize {
							return fmt.Errorf("witness LUN has %d bytes, want %d", fi.Size(), engine.WitnessDiskSize)
						}
						return nil
					}),
			},
			{
				ResourceName:      "kayo_quorum.q",
				ImportState:       true,
				ImportStateId:     "HVCLUSTER",
				ImportStateVerify: true,
			},
			{
				// A second kayo_quorum for the cluster fails at plan time and
				// points to import.
				Config:      base + disk + quorumHCL("q2", "node_majority"),
				PlanOnly:    true,
				ExpectError: errRe(`already has its quorum set by a kayo_quorum (type "node_and_disk_majority"); a cluster has exactly one quorum configuration. Import it`),
			},
			{
				// Both nodes fail: the refreshed state says the cluster has
				// lost quorum, with no diff.
				PreConfig: func() { setDown(t, dir, true, "Y-21-2k8x64", "Y-22-2k8x64") },
				Config:    base + disk,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectEmptyPlan(),
				}},
				ConfigStateChecks: append(figures("kayo_quorum.q", 3, 2, 1, false),
					statecheck.ExpectKnownValue("kayo_host.y22", tfjsonpath.New("state"), knownvalue.StringExact("down"))),
			},
			{
				// Without quorum a change is refused at plan time.
				Config:      base + share,
				PlanOnly:    true,
				ExpectError: errRe(`cluster "HVCLUSTER" has lost quorum (1 of 3 votes present, 2 needed; down: Y-21-2k8x64, Y-22-2k8x64)`),
			},
			{
				// Destroying the kayo_quorum returns the cluster to node_majority.
				PreConfig: func() { setDown(t, dir, false, "Y-21-2k8x64", "Y-22-2k8x64") },
				Config:    base,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("kayo_quorum.q", plancheck.ResourceActionDestroy),
				}},
				Check: quorumIs(dir, "node_majority", false),
			},
		},
	})
}

// setDown fails or recovers hosts directly in the database, as kayoctl
// host fail / recover do.
func setDown(t *testing.T, dir string, down bool, hosts ...string) {
	t.Helper()
	e, err := engine.Open(testEngine(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, h := range hosts {
		if down {
			_, err = e.MarkHostDown(context.Background(), h, engine.DownByLab)
		} else {
			_, err = e.MarkHostUp(context.Background(), h)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestAccQuorum_invalid(t *testing.T) {
	cases := []struct {
		name, quorum, want string
	}{
		{"unknown type", quorumHCL("q", "majority"),
			`type: invalid quorum type "majority": allowed values are node_majority, node_and_disk_majority, node_and_file_share_majority, disk_only`},
		{"disk type without a disk", quorumHCL("q", "node_and_disk_majority"),
			`witness_disk: required with quorum type "node_and_disk_majority"`},
		{"share type without a share", quorumHCL("q", "node_and_file_share_majority"),
			`witness_share: required with quorum type "node_and_file_share_majority": a UNC path such as \\server\share`},
		{"disk_only with a share", quorumHCL("q", "disk_only", `  witness_share = "\\\\fs01\\w"`),
			`witness_share: "\\fs01\w" is not allowed with quorum type "disk_only", which uses witness_disk`},
		{"node_majority with a disk", quorumHCL("q", "node_majority", `  witness_disk = "w1"`),
			`witness_disk: "w1" is not allowed with quorum type "node_majority" (it has no witness)`},
		{"share not UNC", quorumHCL("q", "node_and_file_share_majority", `  witness_share = "//fs01/w"`),
			`witness_share: "//fs01/w" is not a valid file share: allowed is a UNC path`},
		{"bad LUN name", quorumHCL("q", "disk_only", `  witness_disk = "my disk"`),
			`witness_disk: "my disk" is not a valid LUN name`},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			dir := t.TempDir()
			resource.ParallelTest(t, resource.TestCase{
				ProtoV6ProviderFactories: protoV6,
				Steps: []resource.TestStep{{
					Config:      twoNodeCluster(dir) + tc.quorum,
					PlanOnly:    true,
					ExpectError: errRe(tc.want),
				}},
			})
		})
	}
}

func TestWarnRisks(t *testing.T) {
	var diags diag.Diagnostics
	warnRisks(&diags, "HVCLUSTER", "node_majority", 2, path.Root("type"))
	warnRisks(&diags, "HVCLUSTER", "disk_only", 3, path.Root("type"))
	warnRisks(&diags, "HVCLUSTER", "node_majority", 3, path.Root("type"))
	if len(diags) != 2 || diags.HasError() {
		t.Fatalf("want two warnings, got %v", diags)
	}
	if d := diags[0].Detail(); !strings.Contains(d, "tolerates no node failure") {
		t.Errorf("two-node warning: %s", d)
	}
	if d := diags[1].Detail(); !strings.Contains(d, "single point of failure") {
		t.Errorf("disk_only warning: %s", d)
	}
}
