package provider

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
)

// quickstartHCL is examples/quickstart in one file: the seed's hosts, the
// cluster, volume o at letter and VM WEB01 (named name) on it.
func quickstartHCL(dir, letter, name string) string {
	var b strings.Builder
	b.WriteString(providerBlock(dir))
	b.WriteString(seedHost("y21", "Y-21-2k8x64", 21).hcl())
	b.WriteString(seedHost("y22", "Y-22-2k8x64", 22).hcl())
	b.WriteString(clusterHCL("HVCLUSTER", "192.0.2.50/24", "y21", "y22"))
	b.WriteString(volumeHCL("o", `lun = "lun0"`, "size_gib = 100", `label = "VMSTORE"`, fmt.Sprintf("drive_letter = %q", letter),
		"block_size = 4096", "node_slots = 16"))
	fmt.Fprintf(&b, `resource "kayo_virtual_machine" "web" {
  cluster_id       = kayo_cluster.c.id
  volume_id        = kayo_shared_volume.o.id
  name             = %q
  memory_mb        = 2048
  processor_count  = 2
  vhd              = { size_gib = 40, type = "dynamic" }
  network_adapters = [{ switch = "Public" }]
  owner_node       = "Y-21-2k8x64"
}
`, name)
	return b.String()
}

// TestAccVirtualMachine_driveLetterChange: changing drive_letter in place
// moves the VM's paths with it. The apply converges (the next plan is
// empty, no "inconsistent result" on a later apply), and the VM, the
// data source and the engine read P:\WEB01\WEB01.vhd.
func TestAccVirtualMachine_driveLetterChange(t *testing.T) {
	dir := t.TempDir()
	ds := `data "kayo_virtual_machine" "web" {
  cluster_id = kayo_cluster.c.id
  name       = kayo_virtual_machine.web.name
}
`
	paths := func(letter string) []statecheck.StateCheck {
		return []statecheck.StateCheck{
			expectAttr("vhd_path", letter+`:\WEB01\WEB01.vhd`), expectAttr("config_path", letter+`:\WEB01\WEB01.xml`),
			statecheck.ExpectKnownValue("data.kayo_virtual_machine.web", tfjsonpath.New("vhd_path"), knownvalue.StringExact(letter+`:\WEB01\WEB01.vhd`)),
		}
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{Config: quickstartHCL(dir, "O", "WEB01") + ds, ConfigStateChecks: paths("O")},
			{
				// The letter changes in place; the VM itself is unchanged
				// (its paths are read afresh by the next refresh).
				Config: quickstartHCL(dir, "P", "WEB01") + ds,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("kayo_shared_volume.o", plancheck.ResourceActionUpdate),
					plancheck.ExpectResourceAction(res, plancheck.ResourceActionNoop),
				}},
			},
			{
				// A second apply: nothing to change, and the paths are P:.
				Config: quickstartHCL(dir, "P", "WEB01") + ds,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectEmptyPlan(),
				}},
				ConfigStateChecks: paths("P"),
				Check: dbCheck(dir, func(ctx context.Context, e *engine.Engine) error {
					vms, err := e.ListVMs(ctx, "HVCLUSTER")
					if err != nil || len(vms) != 1 || vms[0].VHDPath != `P:\WEB01\WEB01.vhd` || vms[0].DriveLetter != "P" {
						return fmt.Errorf("engine's VMs after the letter change: %+v %v", vms, err)
					}
					return nil
				}),
			},
			{
				// A change of the VM in the same apply as a letter change
				// back: no inconsistent result, and the paths follow.
				Config: withPeriod(quickstartHCL(dir, "O", "WEB01")) + ds,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(res, plancheck.ResourceActionUpdate),
				}},
			},
			{
				Config:            withPeriod(quickstartHCL(dir, "O", "WEB01")) + ds,
				ConfigPlanChecks:  resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
				ConfigStateChecks: paths("O"),
			},
		},
	})
}

// withPeriod adds failure_period_hours = 12 to the VM of cfg: a change in
// place that needs no restart.
func withPeriod(cfg string) string {
	return strings.Replace(cfg, `owner_node       = "Y-21-2k8x64"`, `owner_node       = "Y-21-2k8x64"
  failure_period_hours = 12`, 1)
}

// TestAccVirtualMachine_invalidNameWithNewVolume: a VM name that could
// leave its directory fails the plan naming `name` even while volume_id is
// still unknown (the volume is created in the same apply), and nothing is
// created: no host, cluster, volume or LUN image.
func TestAccVirtualMachine_invalidNameWithNewVolume(t *testing.T) {
	dir := t.TempDir()
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{{
			Config:      quickstartHCL(dir, "O", "../../etc/x"),
			ExpectError: errRe(`Invalid VM name`),
		}, {
			Config:      quickstartHCL(dir, "O", "../../etc/x"),
			ExpectError: errRe(`name: "../../etc/x" is not allowed; allowed: 1 to 64 letters, digits`),
		}},
	})
	e, err := engine.Open(testEngine(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	hosts, err := e.ListHosts(ctx)
	if err != nil || len(hosts) != 0 {
		t.Errorf("hosts after the refused plan: %v %v, want none", hosts, err)
	}
	vols, err := e.ListVolumes(ctx, "")
	if err != nil || len(vols) != 0 {
		t.Errorf("volumes after the refused plan: %v %v, want none", vols, err)
	}
	if imgs, _ := filepath.Glob(filepath.Join(dir, "san", "*")); len(imgs) != 0 {
		t.Errorf("LUN images after the refused plan: %v", imgs)
	}
	if _, err := os.Stat(filepath.Join(dir, "etc")); err == nil {
		t.Errorf("%s exists", filepath.Join(dir, "etc"))
	}
}
