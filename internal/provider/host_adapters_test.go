package provider

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/validate"
	"github.com/kayo-labs/terraform-provider-kayo/internal/hostfacts"
)

// y21Adapters is the seed's Y-21 with network_adapters declared (the
// given Heartbeat address) or, with heartbeat "", left to its agent.
func y21Adapters(heartbeat string) string {
	adapters := ""
	if heartbeat != "" {
		adapters = `  network_adapters = [
    { name = "Public", network = "192.0.2.0/24", address = "192.0.2.21" },
    { name = "Heartbeat", network = "10.10.10.0/24", address = "` + heartbeat + `" },
  ]
`
	}
	return `resource "kayo_host" "y21" {
  name = "Y-21-2k8x64"
  address = "192.0.2.21"
  os_edition = "enterprise"
  processor_vendor = "intel"
  processor_model = "Xeon E5440"
  processor_cores = 8
  memory_mb = 32768
  features = ["Hyper-V", "Failover-Clustering"]
` + adapters + `}
`
}

// kayo_host.network_adapters left out come from the host's agent: no
// value and no report fails the plan naming the attribute; with a report
// the plan shows them unknown and the apply the reported interfaces
// (link-local and address-less ones left out), which validate as a node
// of a cluster whose other nodes declare theirs; a changed address shows
// on refresh with no diff; an adapter declared again that the report
// contradicts fails the node's validation naming host, adapter and both
// values.
func TestAccHost_adaptersFromAgent(t *testing.T) {
	dir := t.TempDir()
	const node = "Y-21-2k8x64"
	report := func(heartbeat string) func(context.Context, *engine.Engine) error {
		return func(ctx context.Context, e *engine.Engine) error {
			return e.ReportHost(ctx, node, hostfacts.Report{Version: hostfacts.ReportVersion, ProcessorVendor: "intel",
				ProcessorModel: "Intel(R) Xeon(R) CPU E5440 @ 2.83GHz", ProcessorCores: 8, MemoryMB: 32000, ReportedAt: time.Now().UTC(),
				Adapters: []hostfacts.Adapter{
					{Name: "eth0", MAC: "52:54:00:00:00:21", Up: true, Addresses: []string{"192.0.2.21/24", "fe80::21/64"}},
					{Name: "eth1", MAC: "52:54:00:01:00:21", Up: true, Addresses: []string{heartbeat + "/24"}},
					{Name: "tap7", Up: true, Addresses: []string{}},
				}})
		}
	}
	fromAgent := func(want bool) func(context.Context, *engine.Engine) error {
		return func(ctx context.Context, e *engine.Engine) error {
			h, err := e.GetHost(ctx, node)
			if err != nil {
				return err
			}
			if slices.Contains(h.FromAgent, engine.FactNetworkAdapters) != want {
				return fmt.Errorf("facts from the agent: %v, want network_adapters among them: %v", h.FromAgent, want)
			}
			return nil
		}
	}
	cfg := func(heartbeat string) string {
		return providerBlock(dir) + y21Adapters(heartbeat) + seedHost("y22", "Y-22-2k8x64", 22).hcl() +
			seedHost("y23", "Y-23-2k8x64", 23).hcl() + clusterHCL("HVCLUSTER", "192.0.2.50/24", "y21", "y22", "y23")
	}
	adapter := func(i int, name, network, address string) statecheck.StateCheck {
		return statecheck.ExpectKnownValue("kayo_host.y21", tfjsonpath.New("network_adapters").AtSliceIndex(i),
			knownvalue.ObjectExact(map[string]knownvalue.Check{"name": knownvalue.StringExact(name),
				"network": knownvalue.StringExact(network), "address": knownvalue.StringExact(address)}))
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{
				Config:      cfg(""),
				ExpectError: wrapped(`Missing network_adapters`, `declares no network_adapters and no node agent has reported its machine`),
			},
			{
				PreConfig: withEngine(t, dir, report("10.10.10.21")),
				Config:    cfg(""),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectUnknownValue("kayo_host.y21", tfjsonpath.New("network_adapters")),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("kayo_host.y21", tfjsonpath.New("network_adapters"), knownvalue.ListSizeExact(2)),
					adapter(0, "eth0", "192.0.2.0/24", "192.0.2.21"),
					adapter(1, "eth1", "10.10.10.0/24", "10.10.10.21"),
					statecheck.ExpectKnownValue("kayo_host.y21", tfjsonpath.New("reported").AtMapKey("network_adapters").AtSliceIndex(0).AtMapKey("networks"),
						knownvalue.ListExact([]knownvalue.Check{knownvalue.StringExact("192.0.2.0/24")})),
				},
				Check: resource.ComposeTestCheckFunc(dbCheck(dir, fromAgent(true)), func(s *terraform.State) error {
					for _, name := range []string{validate.TestClusterNetworkConfig, validate.TestReportedInventory, validate.TestAdapterCount} {
						x, err := validationEntry(s, name)
						if err != nil {
							return err
						}
						// Inventory warns: Y-22 and Y-23 have no agent.
						if x["result"] != "passed" && (name != validate.TestReportedInventory || x["result"] != "warning") {
							return fmt.Errorf("%s with Y-21's adapters from its agent: %v, want passed", name, x)
						}
					}
					return nil
				}),
			},
			{
				// The agent reports a new heartbeat address: refresh shows it, no diff.
				PreConfig: withEngine(t, dir, report("10.10.10.121")),
				Config:    cfg(""),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectEmptyPlan(),
				}},
				ConfigStateChecks: []statecheck.StateCheck{adapter(1, "eth1", "10.10.10.0/24", "10.10.10.121")},
			},
			{
				// Declared with an address the agent does not report: the
				// node's validation fails naming both values.
				Config: cfg("10.10.10.21"),
				ExpectError: wrapped(`host "Y-21-2k8x64" declares network_adapters "Heartbeat" address 10.10.10.21 but its agent reports`,
					`10.10.10.121 (interface eth1) in network 10.10.10.0/24`),
			},
			{
				// Declared as reported: recorded as declared.
				Config: cfg("10.10.10.121"),
				ConfigStateChecks: []statecheck.StateCheck{
					adapter(0, "Public", "192.0.2.0/24", "192.0.2.21"),
					adapter(1, "Heartbeat", "10.10.10.0/24", "10.10.10.121"),
				},
				Check: dbCheck(dir, fromAgent(false)),
			},
			{
				ResourceName:      "kayo_host.y21",
				ImportState:       true,
				ImportStateId:     node,
				ImportStateVerify: true,
			},
		},
	})
}
