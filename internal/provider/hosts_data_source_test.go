package provider

import (
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

func TestAccHostsDataSource(t *testing.T) {
	dir := t.TempDir()
	spare := seedHost("y23", "Y-23-2k8x64", 23)
	spare.maintenance = true
	base := providerBlock(dir) + seedHost("y21", "Y-21-2k8x64", 21).hcl() + seedHost("y22", "Y-22-2k8x64", 22).hcl() +
		spare.hcl() + clusterHCL("HVCLUSTER", "192.0.2.50/24", "y21", "y22")
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{Config: base},
			{
				Config: base + `
data "kayo_hosts" "all" {}
data "kayo_hosts" "nodes" {
  cluster = "HVCLUSTER"
}
data "kayo_hosts" "free" {
  cluster = ""
}
data "kayo_hosts" "maint" {
  state = "maintenance"
}
`,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("data.kayo_hosts.all", tfjsonpath.New("names"), knownvalue.ListExact([]knownvalue.Check{
						knownvalue.StringExact("Y-21-2k8x64"), knownvalue.StringExact("Y-22-2k8x64"), knownvalue.StringExact("Y-23-2k8x64")})),
					statecheck.ExpectKnownValue("data.kayo_hosts.nodes", tfjsonpath.New("names"), knownvalue.ListExact([]knownvalue.Check{
						knownvalue.StringExact("Y-21-2k8x64"), knownvalue.StringExact("Y-22-2k8x64")})),
					statecheck.ExpectKnownValue("data.kayo_hosts.nodes", tfjsonpath.New("hosts").AtSliceIndex(0).AtMapKey("cluster"),
						knownvalue.StringExact("HVCLUSTER")),
					statecheck.ExpectKnownValue("data.kayo_hosts.free", tfjsonpath.New("names"), knownvalue.ListExact([]knownvalue.Check{
						knownvalue.StringExact("Y-23-2k8x64")})),
					statecheck.ExpectKnownValue("data.kayo_hosts.maint", tfjsonpath.New("hosts").AtSliceIndex(0).AtMapKey("state"),
						knownvalue.StringExact("maintenance")),
					statecheck.ExpectKnownValue("data.kayo_hosts.all", tfjsonpath.New("hosts").AtSliceIndex(1).AtMapKey("memory_mb"),
						knownvalue.Int64Exact(32768)),
				},
			},
		},
	})
}
