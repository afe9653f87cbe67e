//go:build linux

package provider

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/kayo-labs/terraform-provider-kayo/internal/netnsrig"
	"github.com/kayo-labs/terraform-provider-kayo/internal/qemutest"
)

// qemuSwitchLabHCL is qemuLabHCL with WEB01 on private switch Lab
// (10.77.0.0/24) and a wait_for_ip.
func qemuSwitchLabHCL(dir, owner, wait string) string {
	hcl := qemuLabHCL(dir, owner, "live")
	hcl = strings.Replace(hcl, "  network_adapters = []\n", fmt.Sprintf("  network_adapters = [{ switch = kayo_virtual_switch.lab.id }]\n"+
		"  timeouts         = { wait_for_ip = %q }\n", wait), 1)
	return hcl + `resource "kayo_virtual_switch" "lab" {
  cluster_id = kayo_cluster.c.id
  name       = "Lab"
  type       = "private"
  subnet     = "10.77.0.0/24"
}
`
}

// The test guest under QEMU (both nodes' agents in one network namespace,
// so the private switch is one bridge there) gets its reserved address
// by DHCP from its node's agent; with wait_for_ip apply returns it in
// ip_addresses, and a live migration to the other node keeps it (known
// in the plan, the same after, the guest still holding its lease).
func TestAccVirtualMachine_qemuAddressByDHCP(t *testing.T) {
	if os.Getenv(envTestEtcd) != "" {
		t.Skip("the QEMU test's node agents use the embedded data dir; it runs in the embedded acceptance runs")
	}
	if testing.Short() {
		t.Skip("QEMU acceptance test")
	}
	rig := netnsrig.New(t)
	ns := rig.AddHost("lab", map[string]netip.Prefix{})
	guest := qemutest.Guest(t)
	dir := t.TempDir()
	qemutest.StartAgentsIn(t, ns.NS, dir, guest, "Y-21-2k8x64", "Y-22-2k8x64")
	ip0 := tfjsonpath.New("network_adapters").AtSliceIndex(0).AtMapKey("ip_addresses")
	addr := knownvalue.ListExact([]knownvalue.Check{knownvalue.StringExact("10.77.0.2")})
	serialHas := func(node, want string) func(*terraform.State) error {
		return func(*terraform.State) error {
			b, _ := os.ReadFile(qemutest.SerialPath(dir, node, "WEB01"))
			if !strings.Contains(string(b), want) {
				return fmt.Errorf("WEB01's console on %s lacks %q:\n%s", node, want, b)
			}
			return nil
		}
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{
				Config: qemuSwitchLabHCL(dir, "Y-21-2k8x64", "2m"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectUnknownValue(res, ip0),
				}},
				ConfigStateChecks: []statecheck.StateCheck{expectNode("Y-21-2k8x64"), statecheck.ExpectKnownValue(res, ip0, addr)},
				// The guest took it by DHCP (guest/init has no other way).
				Check: serialHas("Y-21-2k8x64", "addr=10.77.0.2/24 via=dhcp"),
			},
			{
				Config: qemuSwitchLabHCL(dir, "Y-22-2k8x64", "2m"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(res, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(res, ip0, addr),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					expectNode("Y-22-2k8x64"), statecheck.ExpectKnownValue(res, ip0, addr),
					statecheck.ExpectKnownValue(res, tfjsonpath.New("last_migration").AtMapKey("type"), knownvalue.StringExact("live")),
				},
				Check: func(s *terraform.State) error {
					// The same boot runs on Y-22 (its counter goes on), still
					// answering on its address: Y-22's agent reports it.
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					before := qemutest.Counters(qemutest.SerialPath(dir, "Y-21-2k8x64", "WEB01"))
					if len(before) == 0 {
						return fmt.Errorf("no counter on Y-21")
					}
					if err := qemutest.WaitCounter(ctx, qemutest.SerialPath(dir, "Y-22-2k8x64", "WEB01"), before[len(before)-1].N+2); err != nil {
						return err
					}
					if _, err := qemutest.Continues(before, qemutest.Counters(qemutest.SerialPath(dir, "Y-22-2k8x64", "WEB01"))); err != nil {
						return err
					}
					return nil
				},
			},
			{
				// A refresh after the move reads Y-22's own report: no diff.
				RefreshState: true,
				Check:        resource.TestCheckResourceAttr(res, "network_adapters.0.ip_addresses.0", "10.77.0.2"),
			},
		},
	})
}
