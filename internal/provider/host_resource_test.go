package provider

import (
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

func TestAccHost_lifecycle(t *testing.T) {
	dir := t.TempDir()
	h := seedHost("y21", "Y-21-2k8x64", 21)
	bigger := h
	bigger.memory = 65536
	bigger.maintenance = true
	renamed := bigger
	renamed.name = "Y-31-2k8x64"

	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{
				Config: providerBlock(dir) + h.hcl(),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("kayo_host.y21", tfjsonpath.New("id"), knownvalue.StringExact("Y-21-2k8x64")),
					statecheck.ExpectKnownValue("kayo_host.y21", tfjsonpath.New("state"), knownvalue.StringExact("up")),
					statecheck.ExpectKnownValue("kayo_host.y21", tfjsonpath.New("reported"), knownvalue.Null()),
					statecheck.ExpectKnownValue("kayo_host.y21", tfjsonpath.New("features"),
						knownvalue.SetExact([]knownvalue.Check{knownvalue.StringExact("Hyper-V"), knownvalue.StringExact("Failover-Clustering")})),
					statecheck.ExpectKnownValue("kayo_host.y21", tfjsonpath.New("network_adapters").AtSliceIndex(1).AtMapKey("address"),
						knownvalue.StringExact("10.10.10.21")),
				},
			},
			{
				Config: providerBlock(dir) + bigger.hcl(),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("kayo_host.y21", plancheck.ResourceActionUpdate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("kayo_host.y21", tfjsonpath.New("memory_mb"), knownvalue.Int64Exact(65536)),
					statecheck.ExpectKnownValue("kayo_host.y21", tfjsonpath.New("state"), knownvalue.StringExact("maintenance")),
				},
			},
			{
				ResourceName:      "kayo_host.y21",
				ImportState:       true,
				ImportStateId:     "Y-21-2k8x64",
				ImportStateVerify: true,
			},
			{
				Config: providerBlock(dir) + renamed.hcl(),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("kayo_host.y21", plancheck.ResourceActionDestroyBeforeCreate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("kayo_host.y21", tfjsonpath.New("id"), knownvalue.StringExact("Y-31-2k8x64")),
				},
			},
		},
	})
}

func TestAccHost_invalid(t *testing.T) {
	dir := t.TempDir()
	outside := `resource "kayo_host" "bad" {
  name = "Y-21-2k8x64"
  address = "192.0.2.21"
  os_edition = "enterprise"
  processor_vendor = "intel"
  processor_model = "Xeon E5440"
  processor_cores = 8
  memory_mb = 32768
  network_adapters = [{ name = "Public", network = "192.0.2.0/24", address = "198.51.100.7" }]
}
`
	edition := seedHost("bad", "Y-21-2k8x64", 21)
	edition.edition = "professional"
	vendor := seedHost("bad", "Y-21-2k8x64", 21)
	vendor.vendor = "via"
	badName := seedHost("bad", "Y_21", 21)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{
				Config:      providerBlock(dir) + outside,
				PlanOnly:    true,
				ExpectError: errRe(`network_adapters[0].address: "198.51.100.7" is not allowed; allowed: an address inside the adapter's network 192.0.2.0/24`),
			},
			{
				Config:      providerBlock(dir) + edition.hcl(),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)os_edition.*"professional"`),
			},
			{
				Config:      providerBlock(dir) + vendor.hcl(),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)processor_vendor.*"via"`),
			},
			{
				Config:      providerBlock(dir) + badName.hcl(),
				PlanOnly:    true,
				ExpectError: errRe(`name: "Y_21" is not allowed; allowed: 1 to 63 letters, digits and hyphens`),
			},
		},
	})
}
