package provider

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

// Data disks added in place (the VM off), a DVD holding an ISO put by a
// kayo_volume_file, a boot order; removing a data disk or naming a device
// twice fails the plan naming the attribute.
func TestAccVirtualMachine_dataDisksAndDVD(t *testing.T) {
	dir := t.TempDir()
	vol := vmLab(t, dir, "HVCLUSTER", 50, "O", seedLab...)
	iso := filepath.Join(t.TempDir(), "tools.iso")
	img := make([]byte, 20*2048)
	copy(img[16*2048+1:], "CD001")
	if err := os.WriteFile(iso, img, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := func(disks, boot string) string {
		return providerBlock(dir) + fmt.Sprintf("resource \"kayo_volume_file\" \"tools\" {\n  volume_id = %q\n  path = \"isos/tools.iso\"\n  source = %q\n}\n", vol, iso) +
			vmHCL(vol, "DB01", vhd(1, "dynamic"), `state = "off"`, "data_disks = "+disks, "dvd = { path = kayo_volume_file.tools.path }",
				"boot_order = "+boot)
	}
	disks := func(n int) resource.TestCheckFunc {
		return dbCheck(dir, func(ctx context.Context, e *engine.Engine) error {
			return e.WithVolume(ctx, vol, "Y-21-2k8x64", func(fv *kayofs.Volume) error {
				for i := 1; i <= n; i++ {
					if _, err := fv.Stat(fmt.Sprintf("DB01/DB01-disk%d.vhd", i)); err != nil {
						return fmt.Errorf("data disk %d: %w", i, err)
					}
				}
				return nil
			})
		})
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{
				Config: cfg(`[{ size_gib = 2 }]`, `["dvd", "vhd"]`),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(res, tfjsonpath.New("data_disks").AtSliceIndex(0).AtMapKey("type"), knownvalue.StringExact("dynamic")),
					statecheck.ExpectKnownValue(res, tfjsonpath.New("dvd").AtMapKey("path"), knownvalue.StringExact("isos/tools.iso")),
				},
				Check: disks(1),
			},
			{
				Config: cfg(`[{ size_gib = 3 }, { size_gib = 1, type = "fixed" }]`, `["dvd", "vhd"]`),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(res, plancheck.ResourceActionUpdate),
				}},
				Check: disks(2),
			},
			{
				Config:      cfg(`[{ size_gib = 3 }]`, `["dvd", "vhd"]`),
				ExpectError: regexp.MustCompile(`(?s)data_disks.*delete\s+its\s+data`),
			},
			{
				Config:      cfg(`[{ size_gib = 3 }, { size_gib = 1, type = "fixed" }]`, `["dvd", "dvd"]`),
				ExpectError: regexp.MustCompile(`(?s)boot_order\[1\].*listed\s+twice`),
			},
		},
	})
}
