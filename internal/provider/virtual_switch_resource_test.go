package provider

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
)

func switchHCL(res, name, typ, adapter string) string {
	a := ""
	if adapter != "" {
		a = fmt.Sprintf("  adapter = %q\n", adapter)
	}
	return fmt.Sprintf("resource \"kayo_virtual_switch\" %q {\n  cluster_id = \"HVCLUSTER\"\n  name = %q\n  type = %q\n%s}\n", res, name, typ, a)
}

// switchesAre asserts the cluster's switches in the database.
func switchesAre(dir string, want ...string) resource.TestCheckFunc {
	return dbCheck(dir, func(ctx context.Context, e *engine.Engine) error {
		sws, err := e.ListSwitches(ctx, "HVCLUSTER")
		if err != nil {
			return err
		}
		var got []string
		for _, s := range sws {
			got = append(got, s.Name+":"+s.Type+":"+s.Adapter+s.Subnet)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("switches %v, want %v", got, want)
		}
		return nil
	})
}

func TestAccVirtualSwitch_lifecycle(t *testing.T) {
	dir := t.TempDir()
	vol := vmLab(t, dir, "HVCLUSTER", 50, "O", seedLab...)
	const sw = "kayo_virtual_switch.public"
	lab := strings.Replace(switchHCL("lab", "Lab", "private", ""), "}\n", "  subnet = \"10.77.0.0/24\"\n}\n", 1)
	vmOnLab := func(more ...string) string {
		adapters := "network_adapters = [{ switch = kayo_virtual_switch.lab.id }"
		for _, m := range more {
			adapters += fmt.Sprintf(", { switch = %q }", m)
		}
		return vmHCL(vol, "WEB01", vhd(10, "dynamic"), `state = "off"`, adapters+"]")
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{
				// An external switch on an adapter the nodes do not have: a
				// plan error naming the node, the value and what it has.
				Config:      providerBlock(dir) + switchHCL("public", "Public", "external", "Storage"),
				ExpectError: errRe(`adapter: node "Y-21-2k8x64" has no network adapter "Storage"; its adapters (declared and reported): "Heartbeat", "Public"`),
			},
			{
				// An internal switch with an adapter: wrong from the
				// configuration alone.
				Config:      providerBlock(dir) + switchHCL("public", "Public", "internal", "Public"),
				ExpectError: errRe(`only an external switch binds to a host adapter`),
			},
			{
				// The switches and a VM on one of them in one apply: the VM
				// names it by id, known (and judged) at apply.
				Config: providerBlock(dir) + switchHCL("public", "Public", "external", "Public") + lab + vmOnLab(),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(sw, plancheck.ResourceActionCreate),
					plancheck.ExpectKnownValue(sw, tfjsonpath.New("bridge"), knownvalue.StringExact(engine.BridgeName("HVCLUSTER", "Public"))),
					plancheck.ExpectUnknownValue(res, tfjsonpath.New("network_adapters").AtSliceIndex(0).AtMapKey("switch")),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(sw, tfjsonpath.New("id"), knownvalue.StringExact("HVCLUSTER/Public")),
					statecheck.ExpectKnownValue(res, tfjsonpath.New("network_adapters").AtSliceIndex(0).AtMapKey("switch"), knownvalue.StringExact("HVCLUSTER/Lab")),
					// Off: no guest uses its reserved address (10.77.0.2, in the
					// database) yet.
					statecheck.ExpectKnownValue(res, tfjsonpath.New("network_adapters").AtSliceIndex(0).AtMapKey("ip_addresses"), knownvalue.ListSizeExact(0)),
				},
				Check: resource.ComposeTestCheckFunc(switchesAre(dir, "Lab:private:10.77.0.0/24", "Public:external:Public"),
					vmAddressesAre(dir, "WEB01", "10.77.0.2/24")),
			},
			{
				// A second adapter on a switch that does not exist: a plan
				// error naming the attribute, the value and the switches.
				Config:      providerBlock(dir) + switchHCL("public", "Public", "external", "Public") + lab + vmOnLab("Pubilc"),
				ExpectError: errRe(`network_adapters[1].switch: cluster "HVCLUSTER" has no virtual switch "Pubilc"; its switches: "Lab", "Public"`),
			},
			{
				// By name, on the existing switch: in place; the first
				// adapter keeps its reserved address, the new one on a switch
				// without subnet has none.
				Config: providerBlock(dir) + switchHCL("public", "Public", "external", "Public") + lab + vmOnLab("Public"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(res, plancheck.ResourceActionUpdate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(res, tfjsonpath.New("network_adapters").AtSliceIndex(1).AtMapKey("ip_addresses"), knownvalue.ListSizeExact(0)),
				},
				Check: vmAddressesAre(dir, "WEB01", "10.77.0.2/24", ""),
			},
			{
				// Rebinding is in place.
				Config: providerBlock(dir) + switchHCL("public", "Public", "external", "Heartbeat") + lab + vmOnLab("Public"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(sw, plancheck.ResourceActionUpdate),
				}},
				Check: switchesAre(dir, "Lab:private:10.77.0.0/24", "Public:external:Heartbeat"),
			},
			{
				ResourceName:      sw,
				ImportState:       true,
				ImportStateId:     "HVCLUSTER/Public",
				ImportStateVerify: true,
			},
			{
				// A switch a VM uses (by name: Terraform does not order
				// them) cannot go; nothing is lost.
				Config:      providerBlock(dir) + lab + vmOnLab("Public"),
				ExpectError: errRe(`virtual switch "Public" of cluster "HVCLUSTER": VMs "WEB01" have adapters on it; move or remove them first`),
			},
			{
				Config: providerBlock(dir) + switchHCL("public", "Public", "external", "Heartbeat") + lab,
				Check:  switchesAre(dir, "Lab:private:10.77.0.0/24", "Public:external:Heartbeat"),
			},
			{
				Config: providerBlock(dir),
				Check:  switchesAre(dir),
			},
		},
	})
}

// vmAddressesAre asserts a VM's reserved addresses in the database.
func vmAddressesAre(dir, vm string, want ...string) resource.TestCheckFunc {
	return dbCheck(dir, func(ctx context.Context, e *engine.Engine) error {
		v, err := e.GetVM(ctx, "HVCLUSTER", vm)
		if err != nil {
			return err
		}
		if fmt.Sprint(v.AdapterAddresses) != fmt.Sprint(want) {
			return fmt.Errorf("%s's reserved addresses %q, want %q", vm, v.AdapterAddresses, want)
		}
		return nil
	})
}
