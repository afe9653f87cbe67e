package provider

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	vhdfmt "github.com/kayo-labs/terraform-provider-kayo/internal/engine/vhd"
)

// writeTemplate writes a 64 MiB dynamic VHD holding fill in its first
// sector (different fills, different templates).
func writeTemplate(t *testing.T, fill string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "base.vhd")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := vhdfmt.Create(vhdfmt.OSFile(f), vhdfmt.Options{Type: vhdfmt.Dynamic, Size: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.WriteAt([]byte(strings.Repeat(fill, 512/len(fill))), 0); err != nil {
		t.Fatal(err)
	}
	return p
}

// templateHCL is a kayo_volume_file of source and, for each name, a VM
// whose disk is made from it (vhdExtra adds to the vhd object).
func templateHCL(dir, vol, source string, vhdExtra string, names ...string) string {
	var b strings.Builder
	b.WriteString(providerBlock(dir))
	fmt.Fprintf(&b, "resource \"kayo_volume_file\" \"base\" {\n  volume_id = %q\n  path = \"templates\\\\base.vhd\"\n  source = %q\n}\n", vol, source)
	for _, n := range names {
		fmt.Fprintf(&b, `resource "kayo_virtual_machine" %q {
  cluster_id = "HVCLUSTER"
  volume_id = %q
  name = %q
  memory_mb = 512
  vhd = { size_gib = 1, source = kayo_volume_file.base.path%s }
}
`, strings.ToLower(n), vol, n, vhdExtra)
	}
	return b.String()
}

// A template put on the volume by kayo_volume_file (checked on the way
// in: a *.vhd that is no VHD fails the plan, nothing written), two VMs
// whose disks are differencing children of it, and the template refused
// to be replaced while they exist, naming them; a VM naming a template
// not on the volume fails naming vhd.source, creating nothing.
func TestAccVolumeFile_templateAndClones(t *testing.T) {
	dir := t.TempDir()
	vol := vmLab(t, dir, "HVCLUSTER", 50, "O", seedLab...)
	good := writeTemplate(t, "base")
	other := writeTemplate(t, "next")
	junk := filepath.Join(t.TempDir(), "junk.vhd")
	if err := os.WriteFile(junk, []byte(strings.Repeat("not a VHD ", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(t.TempDir(), "huge.vhd")
	if err := os.WriteFile(huge, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(huge, engine.MaxPutBytesEmbedded+1); err != nil {
		t.Fatal(err)
	}
	// the cap of the database the suite runs on (make acc-etcd: etcd's)
	maxPut := int64(engine.MaxPutBytesEmbedded)
	if os.Getenv(envTestEtcd) != "" {
		maxPut = engine.MaxPutBytesEtcd
	}
	sum, _ := engine.InspectVolumeFile(good, "templates/base.vhd")
	children := func(ctx context.Context, e *engine.Engine) error {
		return e.WithVolume(ctx, vol, "Y-21-2k8x64", func(fv *kayofs.Volume) error {
			for _, n := range []string{"A", "B"} {
				vm, err := e.GetVM(ctx, "HVCLUSTER", n)
				if err != nil {
					return err
				}
				d, _, err := engine.OpenVMDisk(fv, vm, n+"/"+n+".vhd")
				if err != nil {
					return err
				}
				if d.Type() != vhdfmt.Differencing || d.ParentPath() != `..\templates\base.vhd` {
					return fmt.Errorf("%s's disk: %v of %q, want a differencing child of the template", n, d.Type(), d.ParentPath())
				}
			}
			return nil
		})
	}
	noVMs := func(ctx context.Context, e *engine.Engine) error {
		if vms, err := e.ListVMs(ctx, "HVCLUSTER"); err != nil || len(vms) != 0 {
			return fmt.Errorf("VMs %v (%v), want none", vms, err)
		}
		if fs, err := e.ListVolumeFiles(ctx, vol); err != nil || len(fs) != 0 {
			return fmt.Errorf("volume files %v (%v), want none", fs, err)
		}
		return nil
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{
				Config:      templateHCL(dir, vol, junk, "", "A"),
				ExpectError: regexp.MustCompile(`(?s)source.*not\s+a\s+valid\s+VHD`),
			},
			{
				// Past what a put carries through the database: refused
				// at plan, naming source, its file and the limit.
				Config:      templateHCL(dir, vol, huge, "", "A"),
				ExpectError: regexp.MustCompile(fmt.Sprintf(`(?s)source:.*huge\.vhd.*%d\s+bytes.*up\s+to\s+%d\s+bytes`, int64(engine.MaxPutBytesEmbedded)+1, maxPut)),
			},
			{
				Config:      templateHCL(dir, vol, good, `, clone = "linked"`, "A"),
				ExpectError: regexp.MustCompile(`(?s)vhd.clone.*"linked".*"copy"`),
			},
			{
				// Nothing was created by the refused plans.
				Config: providerBlock(dir),
				Check:  dbCheck(dir, noVMs),
			},
			{
				Config: templateHCL(dir, vol, good, "", "A", "B"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("kayo_volume_file.base", tfjsonpath.New("sha256"), knownvalue.StringExact(sum.SHA256)),
					statecheck.ExpectKnownValue("kayo_volume_file.base", tfjsonpath.New("kind"), knownvalue.StringExact("vhd")),
					statecheck.ExpectKnownValue("kayo_virtual_machine.a", tfjsonpath.New("vhd").AtMapKey("clone"), knownvalue.StringExact("differencing")),
				},
				Check: dbCheck(dir, children),
			},
			{
				// New content replaces the template: refused while A and B are its children.
				Config: templateHCL(dir, vol, other, "", "A", "B"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("kayo_volume_file.base", plancheck.ResourceActionDestroyBeforeCreate),
				}},
				ExpectError: regexp.MustCompile(`(?s)parent\s+of\s+the\s+differencing\s+disks\s+of\s+VM\s+A,\s+B`),
			},
			{
				Config: templateHCL(dir, vol, good, "", "A", "B") + `resource "kayo_virtual_machine" "c" {
  cluster_id = "HVCLUSTER"
  volume_id = "` + vol + `"
  name = "C"
  memory_mb = 512
  vhd = { size_gib = 1, source = "templates/missing.vhd" }
}
`,
				ExpectError: regexp.MustCompile(`(?s)vhd.source.*holds\s+no\s+file\s+templates\\missing.vhd`),
			},
			{
				Config: templateHCL(dir, vol, good, "", "A", "B"),
				Check: dbCheck(dir, func(ctx context.Context, e *engine.Engine) error {
					if _, err := e.GetVM(ctx, "HVCLUSTER", "C"); err == nil {
						return fmt.Errorf("the refused VM C exists")
					}
					return children(ctx, e)
				}),
			},
		},
	})
}
