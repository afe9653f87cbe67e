package provider

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
)

// seedHosts are the seed's two hosts plus a third identical one.
func seedHosts() string {
	return seedHost("y21", "Y-21-2k8x64", 21).hcl() + seedHost("y22", "Y-22-2k8x64", 22).hcl() +
		seedHost("y23", "Y-23-2k8x64", 23).hcl()
}

// checkValidation asserts the cluster's validation report: every test
// passed except warnings matching warn (nil: none at all).
func checkValidation(res string, warn *regexp.Regexp) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		rs, ok := s.RootModule().Resources[res]
		if !ok {
			return fmt.Errorf("%s not in state", res)
		}
		a := rs.Primary.Attributes
		n := 0
		fmt.Sscan(a["validation.#"], &n)
		if n < 4 {
			return fmt.Errorf("validation report has %d tests, want one per check in four categories", n)
		}
		categories := map[string]bool{}
		warnings := 0
		for i := 0; i < n; i++ {
			p := fmt.Sprintf("validation.%d.", i)
			categories[a[p+"category"]] = true
			// No node agent reports in the embedded lab: every test says it
			// was computed from declared facts.
			if a[p+"source"] != "declared" {
				return fmt.Errorf("test %q has source %q, want declared (no agent reports here)", a[p+"test"], a[p+"source"])
			}
			switch a[p+"result"] {
			case "passed":
			case "warning":
				if warn == nil || !warn.MatchString(a[p+"message"]) {
					return fmt.Errorf("unexpected warning %q: %s", a[p+"test"], a[p+"message"])
				}
				warnings++
			default:
				return fmt.Errorf("test %q is %s: %s", a[p+"test"], a[p+"result"], a[p+"message"])
			}
		}
		for _, c := range []string{"Inventory", "Network", "Storage", "System Configuration"} {
			if !categories[c] {
				return fmt.Errorf("validation report lacks category %s", c)
			}
		}
		if warn != nil && warnings == 0 {
			return fmt.Errorf("expected a warning matching %s, found none", warn)
		}
		return nil
	}
}

func TestAccCluster_lifecycle(t *testing.T) {
	dir := t.TempDir()
	cfg := func(name string, hosts ...string) string {
		return providerBlock(dir) + seedHosts() + clusterHCL(name, "192.0.2.50/24", hosts...)
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{
				Config: cfg("HVCLUSTER", "y21", "y22"),
				Check:  checkValidation("kayo_cluster.c", nil),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("kayo_cluster.c", tfjsonpath.New("id"), knownvalue.StringExact("HVCLUSTER")),
					statecheck.ExpectKnownValue("kayo_cluster.c", tfjsonpath.New("hypervisor"), knownvalue.StringExact("simulator")),
					statecheck.ExpectKnownValue("kayo_cluster.c", tfjsonpath.New("nodes"), knownvalue.SetExact([]knownvalue.Check{
						knownvalue.StringExact("Y-21-2k8x64"), knownvalue.StringExact("Y-22-2k8x64")})),
				},
			},
			{
				// Adding a node is an in-place update.
				Config: cfg("HVCLUSTER", "y21", "y22", "y23"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("kayo_cluster.c", plancheck.ResourceActionUpdate),
					plancheck.ExpectUnknownValue("kayo_cluster.c", tfjsonpath.New("validation")),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("kayo_cluster.c", tfjsonpath.New("nodes"), knownvalue.SetSizeExact(3)),
				},
				Check: dbCheck(dir, func(ctx context.Context, e *engine.Engine) error {
					h, err := e.GetHost(ctx, "Y-23-2k8x64")
					if err != nil {
						return err
					}
					if h.Cluster != "HVCLUSTER" {
						return fmt.Errorf("Y-23-2k8x64 is in cluster %q, want HVCLUSTER", h.Cluster)
					}
					return nil
				}),
			},
			{
				// Removing a node is an in-place update too.
				Config: cfg("HVCLUSTER", "y22", "y23"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("kayo_cluster.c", plancheck.ResourceActionUpdate),
				}},
				Check: dbCheck(dir, func(ctx context.Context, e *engine.Engine) error {
					h, err := e.GetHost(ctx, "Y-21-2k8x64")
					if err != nil {
						return err
					}
					if h.Cluster != "" {
						return fmt.Errorf("Y-21-2k8x64 still in cluster %q after removal", h.Cluster)
					}
					return nil
				}),
			},
			{
				ResourceName:      "kayo_cluster.c",
				ImportState:       true,
				ImportStateId:     "HVCLUSTER",
				ImportStateVerify: true,
			},
			{
				// Renaming replaces the cluster.
				Config: cfg("HVCLUSTER2", "y22", "y23"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("kayo_cluster.c", plancheck.ResourceActionDestroyBeforeCreate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("kayo_cluster.c", tfjsonpath.New("id"), knownvalue.StringExact("HVCLUSTER2")),
				},
			},
		},
	})
}

func TestAccCluster_memoryWarning(t *testing.T) {
	dir := t.TempDir()
	small := seedHost("y22", "Y-22-2k8x64", 22)
	small.memory = 16384
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{{
			Config: providerBlock(dir) + seedHost("y21", "Y-21-2k8x64", 21).hcl() + small.hcl() +
				clusterHCL("HVCLUSTER", "192.0.2.50/24", "y21", "y22"),
			Check: checkValidation("kayo_cluster.c", regexp.MustCompile(`memory.*32768.*16384|memory.*16384.*32768`)),
		}},
	})
}

// badCase is a cluster configuration that must be refused.
type badCase struct {
	name  string
	hosts []hostOpts
	// cluster is the kayo_cluster block; defaults to HVCLUSTER over all hosts.
	cluster string
	// planOnly: known to be wrong from the configuration alone.
	planOnly bool
	// dbOnly: known only once the hosts are committed (first apply fails,
	// the next plan fails at plan time).
	want string
}

func twoSeedHosts() []hostOpts {
	return []hostOpts{seedHost("y21", "Y-21-2k8x64", 21), seedHost("y22", "Y-22-2k8x64", 22)}
}

func TestAccCluster_invalid(t *testing.T) {
	oneAdapter := twoSeedHosts()
	oneAdapter[1].adapters = 1
	noFC := twoSeedHosts()
	noFC[1].features = []string{"Hyper-V"}
	standard := twoSeedHosts()
	standard[0].edition = "standard"
	var seventeen []hostOpts
	for i := 1; i <= 17; i++ {
		seventeen = append(seventeen, seedHost(fmt.Sprintf("h%d", i), fmt.Sprintf("NODE%02d", i), 100+i))
	}
	cases := []badCase{
		{name: "17 nodes", hosts: seventeen, planOnly: true,
			want: `at most 16 elements, got: 17`},
		{name: "16-character name", hosts: twoSeedHosts(), planOnly: true,
			cluster: clusterHCL("HVCLUSTER-ABCDEF", "192.0.2.50/24", "y21", "y22"),
			want:    `name: cluster name "HVCLUSTER-ABCDEF" has 16 characters; a NetBIOS name has 1 to 15 characters`},
		{name: "all-digit name", hosts: twoSeedHosts(), planOnly: true,
			cluster: clusterHCL("123456", "192.0.2.50/24", "y21", "y22"),
			want:    `"123456"`},
		{name: "one network adapter", hosts: oneAdapter,
			want: `host "Y-22-2k8x64" has 1 network adapter; failover clustering needs at least 2`},
		{name: "no Failover-Clustering feature", hosts: noFC,
			want: `Failover-Clustering`},
		{name: "standard edition", hosts: standard,
			want: `standard`},
		{name: "static_address outside every cluster network", hosts: twoSeedHosts(),
			cluster: clusterHCL("HVCLUSTER", "198.51.100.50/24", "y21", "y22"),
			want:    `198.51.100.50`},
		{name: "static_address a host uses", hosts: twoSeedHosts(),
			cluster: clusterHCL("HVCLUSTER", "192.0.2.22/24", "y21", "y22"),
			want:    `192.0.2.22`},
		{name: "node not a registered host", hosts: twoSeedHosts(),
			cluster: `resource "kayo_cluster" "c" {
  name = "HVCLUSTER"
  nodes = [kayo_host.y21.name, "Y-99-2k8x64"]
  static_address = "192.0.2.50/24"
}
`,
			want: `Y-99-2k8x64`},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			runBadCase(t, tc)
		})
	}
}

func runBadCase(t *testing.T, tc badCase) {
	dir := t.TempDir()
	var hosts strings.Builder
	var res []string
	for _, h := range tc.hosts {
		hosts.WriteString(h.hcl())
		res = append(res, h.res)
	}
	cluster := tc.cluster
	if cluster == "" {
		cluster = clusterHCL("HVCLUSTER", "192.0.2.50/24", res...)
	}
	full := providerBlock(dir) + hosts.String() + cluster
	re := errRe(tc.want)
	var steps []resource.TestStep
	if tc.planOnly {
		steps = []resource.TestStep{{Config: full, PlanOnly: true, ExpectError: re}}
	} else {
		steps = []resource.TestStep{
			// Hosts valid on their own are created; the cluster is refused at apply.
			{Config: full, ExpectError: re},
			// Now the hosts are committed: the same configuration fails at plan time.
			{Config: full, PlanOnly: true, ExpectError: re},
		}
	}
	// Nothing was formed.
	steps = append(steps, resource.TestStep{Config: providerBlock(dir) + hosts.String(), Check: noClusters(dir)})
	resource.ParallelTest(t, resource.TestCase{ProtoV6ProviderFactories: protoV6, Steps: steps})
}
