package provider

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/guestimage"
	"github.com/kayo-labs/terraform-provider-kayo/internal/qemutest"
)

// templateLab is what the QEMU template tests share: the test guest, the
// bootable template (guest/template.sh), its bytes and its boot volume.
type templateLab struct {
	guest    string
	template string
	local    []byte
	vol      guestimage.Volume
}

// newTemplateLab skips where the QEMU acceptance tests do not run (etcd
// runs, -short) and builds the template, failing under CI=true when it
// cannot.
func newTemplateLab(t *testing.T) templateLab {
	t.Helper()
	if os.Getenv(envTestEtcd) != "" {
		t.Skip("the QEMU test's node agents use the embedded data dir; it runs in the embedded acceptance runs")
	}
	if testing.Short() {
		t.Skip("QEMU acceptance test")
	}
	lab := templateLab{guest: qemutest.Guest(t)}
	var err error
	lab.template, err = (&guestimage.Builder{Root: qemutest.RepoRoot()}).Build(context.Background())
	if err != nil {
		qemutest.SkipOrFail(t, err)
	}
	if lab.local, err = os.ReadFile(lab.template); err != nil {
		t.Fatal(err)
	}
	tf, err := os.Open(lab.template)
	if err != nil {
		t.Fatal(err)
	}
	defer tf.Close()
	if lab.vol, err = guestimage.ReadVolume(vhdReader(t, tf)); err != nil {
		t.Fatal(err)
	}
	return lab
}

// qemuClusterHCL: the provider on dir, hosts Y-21 and Y-22 in a cluster
// running the qemu driver, and volume O: of sizeGiB.
func qemuClusterHCL(dir string, sizeGiB int) string {
	var b strings.Builder
	b.WriteString(providerBlock(dir))
	b.WriteString(seedHost("y21", "Y-21-2k8x64", 21).hcl())
	b.WriteString(seedHost("y22", "Y-22-2k8x64", 22).hcl())
	fmt.Fprintf(&b, `resource "kayo_cluster" "c" {
  name           = "HVCLUSTER"
  nodes          = [kayo_host.y21.name, kayo_host.y22.name]
  static_address = "192.0.2.50/24"
  hypervisor     = "qemu"
}
resource "kayo_shared_volume" "o" {
  cluster_id   = kayo_cluster.c.id
  lun          = "lun0"
  size_gib     = %d
  label        = "VMSTORE"
  drive_letter = "O"
  node_slots   = 8
}
`, sizeGiB)
	return b.String()
}

// templateLabHCL: qemuClusterHCL with the template put on O: by
// kayo_volume_file.base.
func templateLabHCL(dir, template string) string {
	return qemuClusterHCL(dir, 4) + fmt.Sprintf(`resource "kayo_volume_file" "base" {
  volume_id = kayo_shared_volume.o.id
  path      = "templates\\base.vhd"
  source    = %q
}
`, template)
}

// templateUnchanged checks that the template on the lab's volume is still
// byte for byte the local file it was put from.
func templateUnchanged(fv *kayofs.Volume, local []byte) error {
	f, err := fv.Open("templates/base.vhd")
	if err != nil {
		return err
	}
	got := make([]byte, len(local)+1)
	n, _ := f.ReadAt(got, 0)
	if n != len(local) || !bytes.Equal(got[:n], local) {
		return fmt.Errorf("the template on the volume (%d bytes) is not the local file (%d bytes) any more", n, len(local))
	}
	return nil
}
