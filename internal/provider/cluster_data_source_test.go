package provider

import (
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

func TestAccClusterDataSource(t *testing.T) {
	dir := t.TempDir()
	base := providerBlock(dir) + seedHost("y21", "Y-21-2k8x64", 21).hcl() + seedHost("y22", "Y-22-2k8x64", 22).hcl() +
		clusterHCL("HVCLUSTER", "192.0.2.50/24", "y21", "y22")
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{Config: base},
			{
				Config: base + "data \"kayo_cluster\" \"c\" {\n  name = kayo_cluster.c.name\n}\n",
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("data.kayo_cluster.c", tfjsonpath.New("static_address"), knownvalue.StringExact("192.0.2.50/24")),
					statecheck.ExpectKnownValue("data.kayo_cluster.c", tfjsonpath.New("heartbeat_timeout_seconds"), knownvalue.Int64Exact(10)),
					statecheck.ExpectKnownValue("data.kayo_cluster.c", tfjsonpath.New("nodes"), knownvalue.SetExact([]knownvalue.Check{
						knownvalue.StringExact("Y-21-2k8x64"), knownvalue.StringExact("Y-22-2k8x64")})),
				},
				Check: checkValidation("data.kayo_cluster.c", nil),
			},
			{
				Config:      base + "data \"kayo_cluster\" \"missing\" {\n  name = \"NOSUCH\"\n}\n",
				ExpectError: regexp.MustCompile(`cluster "NOSUCH" does not exist: not found`),
			},
		},
	})
}
