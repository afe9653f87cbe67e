package provider

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/hostfacts"
)

// sharedImage makes a sparse file-backed LUN of size bytes and one link to
// it per node (each node's own path to the same LUN).
func sharedImage(t *testing.T, size int64, nodes ...string) (string, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	img := filepath.Join(dir, "shared.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	links := map[string]string{}
	for _, n := range nodes {
		links[n] = filepath.Join(dir, n+".lun")
		if err := os.Symlink(img, links[n]); err != nil {
			t.Fatal(err)
		}
	}
	return img, links
}

// A volume named by device_paths (each node's own path): created and
// mounted on both nodes; a path changed in place; exactly one way of
// naming the LUN, device_paths keyed by the cluster's nodes, both at plan
// time; and, once the nodes' agents report their LUNs, a volume whose LUN
// one node does not see is refused naming that node, nothing formatted.
func TestAccSharedVolume_devicePaths(t *testing.T) {
	dir := t.TempDir()
	base := twoNodeCluster(dir)
	img, links := sharedImage(t, 2<<30, "Y-21-2k8x64", "Y-22-2k8x64", "moved")
	paths := func(p21, p22 string) string {
		return `device_paths = { "Y-21-2k8x64" = "` + p21 + `", "Y-22-2k8x64" = "` + p22 + `" }`
	}
	vol := func(p22 string) string {
		return volumeHCL("p", paths(links["Y-21-2k8x64"], p22), `size_gib = 1`, `drive_letter = "P"`, `file_backed = true`)
	}
	other, otherLinks := sharedImage(t, 2<<30, "Y-21-2k8x64", "Y-22-2k8x64")
	before := fileSHA(t, other)
	report := func() {
		e, err := engine.Open(testEngine(dir))
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		now := time.Now().UTC()
		// Y-21 sees both LUNs; Y-22 only the first.
		for node, luns := range map[string][]hostfacts.LUN{
			"Y-21-2k8x64": {{Path: links["Y-21-2k8x64"], SizeBytes: 2 << 30}, {Path: otherLinks["Y-21-2k8x64"], SizeBytes: 2 << 30}},
			"Y-22-2k8x64": {{Path: links["Y-22-2k8x64"], SizeBytes: 2 << 30}},
		} {
			if err := e.ReportHost(context.Background(), node, hostfacts.Report{Version: hostfacts.ReportVersion, ReportedAt: now,
				ProcessorVendor: "intel", ProcessorModel: "Xeon E5440", ProcessorCores: 8, MemoryMB: 32768, LUNs: luns}); err != nil {
				t.Fatal(err)
			}
		}
	}
	unseen := volumeHCL("q", paths(otherLinks["Y-21-2k8x64"], otherLinks["Y-22-2k8x64"]), `size_gib = 1`, `drive_letter = "Q"`, `file_backed = true`)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{Config: base + volumeHCL("x", `lun = "lun0"`, `device_id = "wwn-0x5000c500a1b2c3d4"`, `size_gib = 1`, `drive_letter = "X"`),
				PlanOnly: true, ExpectError: errRe(`lun = "lun0" and device_id = "wwn-0x5000c500a1b2c3d4" name the LUN more than once`)},
			{Config: base + volumeHCL("x", `size_gib = 1`, `drive_letter = "X"`),
				PlanOnly: true, ExpectError: errRe(`lun: "" is not allowed; allowed: exactly one of lun`)},
			{Config: base + volumeHCL("x", `device_id = "../sda"`, `size_gib = 1`, `drive_letter = "X"`),
				PlanOnly: true, ExpectError: errRe(`device_id: "../sda" is not allowed; allowed: a name under /dev/disk/by-id`)},
			{Config: base},
			{Config: base + volumeHCL("x", `device_paths = { "Y-21-2k8x64" = "`+img+`", "Y-29" = "`+img+`" }`, `size_gib = 1`, `drive_letter = "X"`, `file_backed = true`),
				PlanOnly: true, ExpectError: errRe(`device_paths names "Y-29", which is not a node of cluster "HVCLUSTER"`)},
			{
				Config: base + vol(links["Y-22-2k8x64"]),
				Check:  volumeIs(dir, "P", mountCount(2)),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("kayo_shared_volume.p", tfjsonpath.New("lun"), knownvalue.Null()),
					statecheck.ExpectKnownValue("kayo_shared_volume.p", tfjsonpath.New("device_paths").AtMapKey("Y-22-2k8x64"), knownvalue.StringExact(links["Y-22-2k8x64"])),
				},
			},
			{
				Config:           base + vol(links["moved"]),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction("kayo_shared_volume.p", plancheck.ResourceActionUpdate)}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("kayo_shared_volume.p", tfjsonpath.New("device_paths").AtMapKey("Y-22-2k8x64"), knownvalue.StringExact(links["moved"])),
				},
			},
			{PreConfig: report, Config: base + vol(links["moved"]) + unseen, PlanOnly: true, ExpectNonEmptyPlan: true,
				ExpectError: errRe(`node "Y-22-2k8x64" of cluster "HVCLUSTER" does not see device_paths`)},
			{
				PreConfig: func() {
					if fileSHA(t, other) != before {
						t.Fatal("the refused LUN was written")
					}
				},
				Config: base + vol(links["moved"]),
			},
		},
	})
}
