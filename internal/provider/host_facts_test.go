package provider

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/hostfacts"
)

// hostWithoutFacts is the seed's Y-21 with its hardware facts left to its
// agent, memory_mb declared when memory > 0.
func hostWithoutFacts(memory int) string {
	mem := ""
	if memory > 0 {
		mem = fmt.Sprintf("  memory_mb = %d\n", memory)
	}
	return `resource "kayo_host" "y21" {
  name = "Y-21-2k8x64"
  address = "192.0.2.21"
  os_edition = "enterprise"
  features = ["Hyper-V", "Failover-Clustering"]
` + mem + `  network_adapters = [
    { name = "Public", network = "192.0.2.0/24", address = "192.0.2.21" },
    { name = "Heartbeat", network = "10.10.10.0/24", address = "10.10.10.21" },
  ]
}
`
}

// wrapped matches the phrases in order, across the CLI's line wrapping.
func wrapped(phrases ...string) *regexp.Regexp {
	for i, p := range phrases {
		phrases[i] = strings.Join(strings.Fields(regexp.QuoteMeta(p)), `\s+`)
	}
	return regexp.MustCompile(`(?s)` + strings.Join(phrases, ".*"))
}

// withEngine runs fn on the test's database between steps (the plugin
// holds it only while a command runs).
func withEngine(t *testing.T, dir string, fn func(context.Context, *engine.Engine) error) func() {
	return func() {
		e, err := engine.Open(testEngine(dir))
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		if err := fn(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
}

// kayo_host's hardware facts left out come from the host's agent's
// report: a plan without a value and without a report fails naming the
// attribute; with a report the values are unknown in the plan and the
// report's after apply, with no diff after; a changed machine shows on
// refresh with no diff; declaring a fact again records it as declared;
// leaving it out again with no report fails.
func TestAccHost_factsFromAgent(t *testing.T) {
	dir := t.TempDir()
	const node = "Y-21-2k8x64"
	report := func(memory int64) func(context.Context, *engine.Engine) error {
		return func(ctx context.Context, e *engine.Engine) error {
			return e.ReportHost(ctx, node, hostfacts.Report{Version: hostfacts.ReportVersion, ProcessorVendor: "intel",
				ProcessorModel: "Intel(R) Xeon(R) CPU E5-2670 0 @ 2.60GHz", ProcessorCores: 16, MemoryMB: memory, ReportedAt: time.Now().UTC()})
		}
	}
	forget := func(ctx context.Context, e *engine.Engine) error {
		_, err := e.Store().Commit(ctx, nil, []store.Op{store.Del("host-reports/" + node)})
		return err
	}
	fromAgent := func(want ...string) func(context.Context, *engine.Engine) error {
		return func(ctx context.Context, e *engine.Engine) error {
			h, err := e.GetHost(ctx, node)
			if err != nil {
				return err
			}
			if !slices.Equal(h.FromAgent, want) {
				return fmt.Errorf("facts from the agent: %v, want %v", h.FromAgent, want)
			}
			return nil
		}
	}
	cfg := func(memory int) string { return providerBlock(dir) + hostWithoutFacts(memory) }
	fact := func(name string, v knownvalue.Check) statecheck.StateCheck {
		return statecheck.ExpectKnownValue("kayo_host.y21", tfjsonpath.New(name), v)
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{
				Config:      cfg(0),
				ExpectError: wrapped(`Missing processor_cores`, `declares no processor_cores and no node agent has reported its machine`),
			},
			{
				PreConfig: withEngine(t, dir, report(64000)),
				Config:    cfg(0),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectUnknownValue("kayo_host.y21", tfjsonpath.New("memory_mb")),
					plancheck.ExpectUnknownValue("kayo_host.y21", tfjsonpath.New("processor_vendor")),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					fact("memory_mb", knownvalue.Int64Exact(64000)),
					fact("processor_cores", knownvalue.Int64Exact(16)),
					fact("processor_vendor", knownvalue.StringExact("intel")),
					fact("processor_model", knownvalue.StringExact("Intel(R) Xeon(R) CPU E5-2670 0 @ 2.60GHz")),
				},
				Check: dbCheck(dir, fromAgent("memory_mb", "processor_cores", "processor_model", "processor_vendor")),
			},
			{
				// The machine gains memory: refresh shows it, no diff.
				PreConfig: withEngine(t, dir, report(128000)),
				Config:    cfg(0),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectEmptyPlan(),
				}},
				ConfigStateChecks: []statecheck.StateCheck{fact("memory_mb", knownvalue.Int64Exact(128000))},
			},
			{
				// Declared with the same value: an update records it as declared.
				Config: cfg(128000),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("kayo_host.y21", plancheck.ResourceActionUpdate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{fact("memory_mb", knownvalue.Int64Exact(128000))},
				Check:             dbCheck(dir, fromAgent("processor_cores", "processor_model", "processor_vendor")),
			},
			{
				// Left out again while no agent reports: refused, naming it.
				PreConfig:   withEngine(t, dir, forget),
				Config:      cfg(0),
				ExpectError: wrapped(`Missing memory_mb`, `declares no memory_mb and no node agent has reported its machine`),
			},
			{
				PreConfig: withEngine(t, dir, report(96000)),
				Config:    cfg(0),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectUnknownValue("kayo_host.y21", tfjsonpath.New("memory_mb")),
					plancheck.ExpectKnownValue("kayo_host.y21", tfjsonpath.New("processor_cores"), knownvalue.Int64Exact(16)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{fact("memory_mb", knownvalue.Int64Exact(96000))},
				Check:             dbCheck(dir, fromAgent("memory_mb", "processor_cores", "processor_model", "processor_vendor")),
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
