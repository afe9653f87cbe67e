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

// noVMs asserts the cluster has no VM.
func noVMs(dir string) resource.TestCheckFunc {
	return dbCheck(dir, func(ctx context.Context, e *engine.Engine) error {
		vms, err := e.ListVMs(ctx, "HVCLUSTER")
		if err != nil || len(vms) != 0 {
			return fmt.Errorf("VMs %v (%v), want none", vms, err)
		}
		return nil
	})
}

// ip_addresses are the addresses the guest is seen using (the simulator's
// guests take their reserved ones while running): known after apply
// with wait_for_ip, kept by a live migration (known in its plan), empty
// while off; a bad wait_for_ip is a plan error and creates nothing.
func TestAccVirtualMachine_waitForIP(t *testing.T) {
	dir := t.TempDir()
	vol := vmLab(t, dir, "HVCLUSTER", 50, "O", seedLab...)
	lab := strings.Replace(switchHCL("lab", "Lab", "private", ""), "}\n", "  subnet = \"10.77.0.0/24\"\n}\n", 1)
	vm := func(extra ...string) string {
		return lab + vmHCL(vol, "WEB01", append([]string{vhd(10, "dynamic"), `network_adapters = [{ switch = kayo_virtual_switch.lab.id }]`}, extra...)...)
	}
	ip0 := tfjsonpath.New("network_adapters").AtSliceIndex(0).AtMapKey("ip_addresses")
	addr := knownvalue.ListExact([]knownvalue.Check{knownvalue.StringExact("10.77.0.2")})
	var steps []resource.TestStep
	for _, bad := range []string{"5 minutes", "-1m", "10"} {
		steps = append(steps, resource.TestStep{
			Config: providerBlock(dir) + vm(fmt.Sprintf(`timeouts = { wait_for_ip = %q }`, bad)),
			ExpectError: errRe(fmt.Sprintf(`timeouts.wait_for_ip: %q is not allowed; use a duration such as "5m" or "90s" (units "s", "m", "h"), or "0" not to wait`,
				bad)),
		})
	}
	steps = append(steps,
		resource.TestStep{
			// Nothing was created by the refused plans.
			Config: providerBlock(dir),
			Check:  noVMs(dir),
		},
		resource.TestStep{
			Config: providerBlock(dir) + vm(`owner_node = "Y-21-2k8x64"`, `timeouts = { wait_for_ip = "1m" }`),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectUnknownValue(res, ip0),
			}},
			ConfigStateChecks: []statecheck.StateCheck{statecheck.ExpectKnownValue(res, ip0, addr)},
		},
		resource.TestStep{
			// A live migration: the address is known in the plan and the
			// same after it.
			Config: providerBlock(dir) + vm(`owner_node = "Y-22-2k8x64"`, `timeouts = { wait_for_ip = "1m" }`),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectResourceAction(res, plancheck.ResourceActionUpdate),
				plancheck.ExpectKnownValue(res, ip0, addr),
			}},
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue(res, ip0, addr),
				statecheck.ExpectKnownValue(res, tfjsonpath.New("last_migration").AtMapKey("type"), knownvalue.StringExact("live")),
			},
		},
		resource.TestStep{
			// Off: no guest, no address; "0" does not wait.
			Config: providerBlock(dir) + vm(`owner_node = "Y-22-2k8x64"`, `state = "off"`, `timeouts = { wait_for_ip = "0" }`),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectUnknownValue(res, ip0),
			}},
			ConfigStateChecks: []statecheck.StateCheck{statecheck.ExpectKnownValue(res, ip0, knownvalue.ListSizeExact(0))},
			Check:             vmAddressesAre(dir, "WEB01", "10.77.0.2/24"),
		},
		resource.TestStep{
			// Running again with the default wait.
			Config:            providerBlock(dir) + vm(`owner_node = "Y-22-2k8x64"`),
			ConfigStateChecks: []statecheck.StateCheck{statecheck.ExpectKnownValue(res, ip0, addr)},
		},
	)
	resource.ParallelTest(t, resource.TestCase{ProtoV6ProviderFactories: protoV6, Steps: steps})
}
