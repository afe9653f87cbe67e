//go:build linux

package provider

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/netnsrig"
	"github.com/kayo-labs/terraform-provider-kayo/internal/qemutest"
)

// templateNetHCL: VMs A (on Y-21) and B (on Y-22) cloned from the
// template, each with an adapter on private switch Lab (10.77.0.0/24).
func templateNetHCL(dir, template string) string {
	var b strings.Builder
	b.WriteString(templateLabHCL(dir, template))
	b.WriteString(`resource "kayo_virtual_switch" "lab" {
  cluster_id = kayo_cluster.c.id
  name       = "Lab"
  type       = "private"
  subnet     = "10.77.0.0/24"
}
`)
	// B after A, so A takes the switch's first free address.
	for _, vm := range []struct{ name, node, after string }{{"A", "Y-21-2k8x64", "[]"}, {"B", "Y-22-2k8x64", "[kayo_virtual_machine.a]"}} {
		fmt.Fprintf(&b, `resource "kayo_virtual_machine" %q {
  cluster_id       = kayo_cluster.c.id
  volume_id        = kayo_shared_volume.o.id
  name             = %q
  memory_mb        = 192
  vhd              = { size_gib = 1, source = kayo_volume_file.base.path }
  network_adapters = [{ switch = kayo_virtual_switch.lab.id }]
  owner_node       = %q
  timeouts         = { wait_for_ip = "3m" }
  depends_on       = %s
}
`, strings.ToLower(vm.name), vm.name, vm.node, vm.after)
	}
	return b.String()
}

// Two VMs booting the template's OS from their differencing disks, on
// one switch, each get their reserved address by DHCP from their node's
// agent: apply (wait_for_ip) returns them, their consoles say so, and
// both answer on the switch (ping from its bridge).
func TestAccVirtualMachine_qemuTemplateGuestsByDHCP(t *testing.T) {
	lab := newTemplateLab(t)
	guest, template := lab.guest, lab.template
	rig := netnsrig.New(t)
	ns := rig.AddHost("lab", map[string]netip.Prefix{})
	dir := t.TempDir()
	qemutest.StartAgentsIn(t, ns.NS, dir, guest, "Y-21-2k8x64", "Y-22-2k8x64")
	ip0 := tfjsonpath.New("network_adapters").AtSliceIndex(0).AtMapKey("ip_addresses")
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{{
			Config: templateNetHCL(dir, template),
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("kayo_virtual_machine.a", ip0, knownvalue.ListExact([]knownvalue.Check{knownvalue.StringExact("10.77.0.2")})),
				statecheck.ExpectKnownValue("kayo_virtual_machine.b", ip0, knownvalue.ListExact([]knownvalue.Check{knownvalue.StringExact("10.77.0.3")})),
			},
			Check: func(*terraform.State) error {
				for _, vm := range []struct{ name, node, addr string }{{"A", "Y-21-2k8x64", "10.77.0.2"}, {"B", "Y-22-2k8x64", "10.77.0.3"}} {
					log, _ := os.ReadFile(qemutest.SerialPath(dir, vm.node, vm.name))
					if want := "kayo-guest: net eth0 addr=" + vm.addr + "/24 via=dhcp"; !strings.Contains(string(log), want) {
						return fmt.Errorf("%s's console lacks %q:\n%s", vm.name, want, log)
					}
				}
				br := engine.BridgeName("HVCLUSTER", "Lab")
				if out, err := ns.Command("ip", "addr", "add", "10.77.0.1/24", "dev", br).CombinedOutput(); err != nil {
					return fmt.Errorf("an address on %s: %v: %s", br, err, out)
				}
				for _, a := range []string{"10.77.0.2", "10.77.0.3"} {
					if out, err := ns.Command("busybox", "ping", "-c", "1", "-W", "3", a).CombinedOutput(); err != nil {
						return fmt.Errorf("ping %s from the switch: %v: %s", a, err, out)
					}
				}
				return nil
			},
		}},
	})
}
