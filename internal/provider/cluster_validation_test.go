package provider

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/validate"
	"github.com/kayo-labs/terraform-provider-kayo/internal/hostfacts"
	"github.com/kayo-labs/terraform-provider-kayo/internal/netprobe"
)

// testAttrs finds the validation entry of test name in the state.
func validationEntry(s *terraform.State, name string) (map[string]string, error) {
	a := s.RootModule().Resources["kayo_cluster.c"].Primary.Attributes
	for i := 0; ; i++ {
		p := fmt.Sprintf("validation.%d.", i)
		if _, ok := a[p+"test"]; !ok {
			return nil, fmt.Errorf("no %q test in the validation report", name)
		}
		if a[p+"test"] == name {
			out := map[string]string{}
			for k, v := range a {
				if strings.HasPrefix(k, p) {
					out[strings.TrimPrefix(k, p)] = v
				}
			}
			return out, nil
		}
	}
}

// Changing the cluster's nodes validates it again: the plan shows the
// report and its time unknown, the new report covers the new node and
// its time moves on; a change that is no node change keeps the report.
// A probed test names the agents whose reports it used and when.
func TestAccCluster_revalidatesOnNodeChange(t *testing.T) {
	dir := t.TempDir()
	cfg := func(force bool, hosts ...string) string {
		c := clusterHCL("HVCLUSTER", "192.0.2.50/24", hosts...)
		if force {
			c = strings.TrimSuffix(c, "}\n") + "  force_destroy = true\n}\n"
		}
		return providerBlock(dir) + seedHosts() + c
	}
	reportAt := time.Now().UTC().Truncate(time.Second)
	reportAll := withEngine(t, dir, func(ctx context.Context, e *engine.Engine) error {
		for _, n := range []string{"Y-21-2k8x64", "Y-22-2k8x64", "Y-23-2k8x64"} {
			if err := e.ReportHost(ctx, n, hostfacts.Report{Version: hostfacts.ReportVersion, ProcessorVendor: "intel",
				ProcessorModel: "Intel(R) Xeon(R) CPU E5440 @ 2.83GHz", ProcessorCores: 8, MemoryMB: 32000,
				CPUFlags: []string{"sse4_2", "popcnt"}, ReportedAt: reportAt}); err != nil {
				return err
			}
		}
		return nil
	})
	// Every agent probes the other two on both networks.
	probeAll := withEngine(t, dir, func(ctx context.Context, e *engine.Engine) error {
		nodes := []string{"Y-21-2k8x64", "Y-22-2k8x64", "Y-23-2k8x64"}
		for i, n := range nodes {
			round := engine.ProbeRound{At: time.Now().UTC()}
			for j, peer := range nodes {
				if peer == n {
					continue
				}
				for _, pre := range []string{"192.0.2.", "10.10.10."} {
					round.Results = append(round.Results, netprobe.Result{To: peer, Network: pre + "0/24",
						Address: fmt.Sprint(pre, 21+j), Reachable: true, RTT: time.Duration(250+i) * time.Microsecond})
				}
			}
			if err := e.RecordProbes(ctx, "HVCLUSTER", n, round); err != nil {
				return err
			}
		}
		return nil
	})
	at := statecheck.CompareValue(compare.ValuesDiffer())
	same := statecheck.CompareValue(compare.ValuesSame())
	rfc3339 := knownvalue.StringRegexp(regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$`))
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{
				Config: cfg(false, "y21", "y22"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("kayo_cluster.c", tfjsonpath.New("validated_at"), rfc3339),
					at.AddStateValue("kayo_cluster.c", tfjsonpath.New("validated_at")),
				},
				Check: func(s *terraform.State) error {
					x, err := validationEntry(s, validate.TestReportedInventory)
					if err != nil {
						return err
					}
					if x["source"] != "declared" || x["agents.#"] != "0" || !strings.Contains(x["message"], "computed from declared facts") {
						return fmt.Errorf("no agent reports yet: %v, want source declared and the message saying so", x)
					}
					return nil
				},
			},
			{
				PreConfig: func() { reportAll(); probeAll() },
				Config:    cfg(false, "y21", "y22", "y23"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectUnknownValue("kayo_cluster.c", tfjsonpath.New("validation")),
					plancheck.ExpectUnknownValue("kayo_cluster.c", tfjsonpath.New("validated_at")),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					at.AddStateValue("kayo_cluster.c", tfjsonpath.New("validated_at")),
					same.AddStateValue("kayo_cluster.c", tfjsonpath.New("validated_at")),
				},
				Check: func(s *terraform.State) error {
					x, err := validationEntry(s, validate.TestReportedInventory)
					if err != nil {
						return err
					}
					if x["source"] != "probed" || x["result"] != "passed" || !strings.Contains(x["message"], "3 nodes") {
						return fmt.Errorf("after adding Y-23 with agents reporting: %v, want the 3 nodes' reports", x)
					}
					want := reportAt.Format(time.RFC3339Nano)
					if x["agents.#"] != "3" || x["agents.2.node"] != "Y-23-2k8x64" || x["agents.2.at"] != want {
						return fmt.Errorf("agents of the test: %v, want the 3 nodes, Y-23 last, reported at %s", x, want)
					}
					// Reachability and round trip per pair and network.
					if x, err = validationEntry(s, validate.TestNetworkCommunication); err != nil {
						return err
					}
					if x["source"] != "probed" || x["result"] != "passed" || x["probes.#"] != "12" ||
						x["probes.11.from"] != "Y-23-2k8x64" || x["probes.11.reachable"] != "true" || x["probes.11.rtt_ms"] != "0.252" {
						return fmt.Errorf("network communication from probes: %v, want 12 probes, Y-23's last with its round trip", x)
					}
					return nil
				},
			},
			{
				// force_destroy alone is no node change: the report stays.
				// Y-23's agent measured its clock 1.234 s ahead: its
				// kayo_host shows it.
				PreConfig: withEngine(t, dir, func(ctx context.Context, e *engine.Engine) error {
					off := 1234 * time.Millisecond
					return e.RecordProbes(ctx, "HVCLUSTER", "Y-23-2k8x64", engine.ProbeRound{At: time.Now().UTC(), ClockOffset: &off})
				}),
				Config: cfg(true, "y21", "y22", "y23"),
				ConfigStateChecks: []statecheck.StateCheck{
					same.AddStateValue("kayo_cluster.c", tfjsonpath.New("validated_at")),
					statecheck.ExpectKnownValue("kayo_host.y23", tfjsonpath.New("reported").AtMapKey("clock_offset_ms"), knownvalue.Int64Exact(1234)),
					statecheck.ExpectKnownValue("kayo_host.y21", tfjsonpath.New("reported").AtMapKey("clock_offset_ms"), knownvalue.Null()),
				},
			},
		},
	})
}
