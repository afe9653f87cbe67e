package provider

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
)

// TestAccExistsSaysImportBlock: creating a VM or a host that the cluster
// database holds already (an apply killed after creating it, before the
// state was saved) fails with the import block that adopts it.
func TestAccExistsSaysImportBlock(t *testing.T) {
	dir := t.TempDir()
	vol := vmLab(t, dir, "HVCLUSTER", 50, "O", seedLab...)
	labDo(t, dir, func(ctx context.Context, e *engine.Engine) error {
		_, err := e.CreateVM(ctx, engine.VMSpec{Cluster: "HVCLUSTER", Volume: vol, Name: "WEB01", MemoryMB: 1024, ProcessorCount: 1,
			VHD: engine.VHDSpec{SizeGiB: 1, Type: "dynamic"}, AntiAffinityMode: "preferred", Migration: "live", State: "running",
			Failback: engine.FailbackSpec{Mode: "prevent"}, MaxFailures: 1, FailurePeriodHours: 6})
		return err
	})
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{
				Config: providerBlock(dir) + vmHCL(vol, "WEB01", vhd(1, "dynamic"), "memory_mb = 1024", "processor_count = 1", "network_adapters = []"),
				ExpectError: inOrder(`VM "WEB01" already exists in cluster "HVCLUSTER"`,
					`Adopt it with this import block in a .tf file (Terraform >= 1.5, OpenTofu >= 1.6),`+
						` NAME being this resource's name in the configuration, then apply:`+
						` import { to = kayo_virtual_machine.NAME id = "HVCLUSTER/WEB01" }`+
						" After an interrupted apply, `kayoctl state orphans --state terraform.tfstate`"),
			},
			{
				Config:      providerBlock(dir) + seedHost("h", "Y-21-2k8x64", 21).hcl(),
				ExpectError: inOrder(`host "Y-21-2k8x64" is already registered`, `import { to = kayo_host.NAME id = "Y-21-2k8x64" }`),
			},
		},
	})
}

// inOrder matches each message (as errRe does) in this order.
func inOrder(msgs ...string) *regexp.Regexp {
	parts := make([]string, len(msgs))
	for i, m := range msgs {
		parts[i] = errRe(m).String()
	}
	return regexp.MustCompile(strings.Join(parts, `[\s\S]*`))
}
