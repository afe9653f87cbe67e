package provider

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	vhdfmt "github.com/kayo-labs/terraform-provider-kayo/internal/engine/vhd"
	"github.com/kayo-labs/terraform-provider-kayo/internal/guestimage"
	"github.com/kayo-labs/terraform-provider-kayo/internal/qemutest"
)

// templateQEMUHCL: the qemu lab, the bootable template (guest/template.sh)
// put on O: by a kayo_volume_file, and VMs A (on Y-21) and B (on Y-22)
// whose disks are differencing children of it.
func templateQEMUHCL(dir, template, iso, state string) string {
	var b strings.Builder
	b.WriteString(templateLabHCL(dir, template))
	fmt.Fprintf(&b, `resource "kayo_volume_file" "tools" {
  volume_id = kayo_shared_volume.o.id
  path      = "isos/tools.iso"
  source    = %q
}
`, iso)
	for _, vm := range []struct{ name, node, extra string }{
		{"A", "Y-21-2k8x64", "dvd        = { path = kayo_volume_file.tools.path }"}, {"B", "Y-22-2k8x64", ""}} {
		fmt.Fprintf(&b, `resource "kayo_virtual_machine" %q {
  cluster_id = kayo_cluster.c.id
  volume_id  = kayo_shared_volume.o.id
  name       = %q
  memory_mb  = 192
  vhd        = { size_gib = 1, source = kayo_volume_file.base.path }
  owner_node = %q
  state      = %q
  %s
}
`, strings.ToLower(vm.name), vm.name, vm.node, state, vm.extra)
	}
	return b.String()
}

// TestAccVirtualMachine_qemuTemplateClones: two VMs cloned from one
// template as differencing disks boot the template's OS from their own
// disks (no host kernel: their serial consoles name the template's boot
// volume), each writes its boot id to its disk, A reads the ISO in its
// DVD drive (the volume identifier), B has none; then, with both off, the
// template on the volume is byte for byte the local file, and each child
// holds only its own writes (a few sectors, its own id).
func TestAccVirtualMachine_qemuTemplateClones(t *testing.T) {
	lab := newTemplateLab(t)
	guest, template, local, vol := lab.guest, lab.template, lab.local, lab.vol
	dir := t.TempDir()
	iso := writeISO(t, "KAYO_TOOLS")
	qemutest.StartAgents(t, dir, guest, "Y-21-2k8x64", "Y-22-2k8x64")
	ids := map[string]string{}
	idRe := regexp.MustCompile(`kayo-guest: wrote sector 2 id=([0-9a-f]+)`)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{
				Config: templateQEMUHCL(dir, template, iso, "running"),
				Check: func(*terraform.State) error {
					for _, vm := range []struct{ name, node string }{{"A", "Y-21-2k8x64"}, {"B", "Y-22-2k8x64"}} {
						serial := qemutest.SerialPath(dir, vm.node, vm.name)
						deadline := time.Now().Add(3 * time.Minute)
						for {
							log, _ := os.ReadFile(serial)
							m := idRe.FindSubmatch(log)
							dvd := map[string]string{"A": "kayo-guest: dvd [KAYO_TOOLS]", "B": "kayo-guest: no dvd"}[vm.name]
							if bytes.Contains(log, []byte(vol.BootLine())) && m != nil && bytes.Contains(log, []byte(dvd)) {
								ids[vm.name] = string(m[1])
								if bytes.Contains(log, []byte("KAYO-BOOT")) {
									return fmt.Errorf("%s booted the host's test kernel, not its disk:\n%s", vm.name, log)
								}
								break
							}
							if time.Now().After(deadline) {
								return fmt.Errorf("%s's console never said it booted from its disk (%q) and %q:\n%s", vm.name, vol.BootLine(), dvd, log)
							}
							time.Sleep(200 * time.Millisecond)
						}
					}
					if ids["A"] == ids["B"] {
						return fmt.Errorf("A and B report one boot id %s", ids["A"])
					}
					return nil
				},
			},
			{
				Config: templateQEMUHCL(dir, template, iso, "off"),
				Check: dbCheck(dir, func(ctx context.Context, e *engine.Engine) error {
					vols, err := e.ListVolumes(ctx, "HVCLUSTER")
					if err != nil || len(vols) != 1 {
						return fmt.Errorf("volumes %v %v", vols, err)
					}
					return e.WithVolume(ctx, vols[0].ID, "Y-21-2k8x64", func(fv *kayofs.Volume) error {
						if err := templateUnchanged(fv, local); err != nil {
							return err
						}
						for _, name := range []string{"A", "B"} {
							vm, err := e.GetVM(ctx, "HVCLUSTER", name)
							if err != nil {
								return err
							}
							d, _, err := engine.OpenVMDisk(fv, vm, name+"/"+name+".vhd")
							if err != nil {
								return err
							}
							own, err := d.OwnSectors()
							if err != nil || own < 1 || own > 64 {
								return fmt.Errorf("%s's child holds %d sectors (%v): want only its own few writes", name, own, err)
							}
							sec := make([]byte, 512)
							if _, err := d.ReadAt(sec, guestimage.WriteSector*512); err != nil {
								return err
							}
							if want := "kayo-guest-write id=" + ids[name]; !bytes.HasPrefix(sec, []byte(want)) {
								return fmt.Errorf("%s's sector 2 holds %q, want %q", name, bytes.TrimRight(sec, "\x00"), want)
							}
							t.Logf("%s: booted from its differencing disk, wrote id %s; the child holds %d sectors", name, ids[name], own)
						}
						return nil
					})
				}),
			},
		},
	})
}

// vhdReader opens the local VHD in f as its virtual disk's bytes.
func vhdReader(t *testing.T, f *os.File) *vhdfmt.Disk {
	t.Helper()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	d, err := vhdfmt.Open(vhdfmt.OSFile(f), st.Size())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// writeISO writes a minimal ISO 9660 image (a primary volume descriptor
// naming volume id, and the set terminator) and returns its path.
func writeISO(t *testing.T, id string) string {
	t.Helper()
	img := make([]byte, 20*2048)
	pvd := img[16*2048:]
	pvd[0], pvd[6] = 1, 1
	copy(pvd[1:], "CD001")
	copy(pvd[40:72], id+strings.Repeat(" ", 32-len(id)))
	term := img[17*2048:]
	term[0], term[6] = 255, 1
	copy(term[1:], "CD001")
	p := filepath.Join(t.TempDir(), "tools.iso")
	if err := os.WriteFile(p, img, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
