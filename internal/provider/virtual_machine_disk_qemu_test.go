package provider

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	vhdfmt "github.com/kayo-labs/terraform-provider-kayo/internal/engine/vhd"
	"github.com/kayo-labs/terraform-provider-kayo/internal/guestimage"
	"github.com/kayo-labs/terraform-provider-kayo/internal/qemutest"
)

// diskQEMUHCL: the qemu lab of templateQEMUHCL with one VM, A, cloned from
// the template with the ISO in its DVD drive, owned by node, with
// dataDisks data disks of 1 GiB.
func diskQEMUHCL(dir, template, iso, node string, dataDisks int) string {
	full := templateQEMUHCL(dir, template, iso, "running")
	// Keep the lab and the volume files; VM A as asked, no B.
	full = full[:strings.Index(full, `resource "kayo_virtual_machine"`)]
	var disks []string
	for i := 0; i < dataDisks; i++ {
		disks = append(disks, "{ size_gib = 1 }")
	}
	dd := ""
	if dataDisks > 0 {
		dd = "data_disks = [" + strings.Join(disks, ", ") + "]"
	}
	return full + fmt.Sprintf(`resource "kayo_virtual_machine" "a" {
  cluster_id = kayo_cluster.c.id
  volume_id  = kayo_shared_volume.o.id
  name       = "A"
  memory_mb  = 192
  vhd        = { size_gib = 1, source = kayo_volume_file.base.path }
  owner_node = %q
  state      = "running"
  migration  = "live"
  dvd        = { path = kayo_volume_file.tools.path }
  %s
}
`, node, dd)
}

// waitSerial waits until the console log at path matches re, and returns
// the log and the match.
func waitSerial(path string, re *regexp.Regexp, within time.Duration) ([]byte, [][]byte, error) {
	deadline := time.Now().Add(within)
	for {
		log, _ := os.ReadFile(path)
		if m := re.FindSubmatch(log); m != nil {
			return log, m, nil
		}
		if time.Now().After(deadline) {
			return log, nil, fmt.Errorf("%s never showed %s:\n%s", path, re, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestAccVirtualMachine_qemuDiskHotplugAndMove: VM A, a differencing
// child of the template with a DVD, boots from its disk; a data disk added
// to the running VM is hot-plugged (an update, no reboot: one boot on its
// console) and the guest sees it and marks it; then A live-migrates by
// owner_node (an update, never a replacement) with its child disk, its
// DVD and the hot-plugged disk: on the new node the same boot goes on
// writing and reading back its disk and reading its DVD. Off, the
// template is byte for byte the local file, the child passes the
// project's check and holds the guest's last tick (written after the
// move), and the data disk holds the guest's mark. Under TCG an attempt
// whose guest faulted right after the move runs once more
// (qemutest.RetryOnTCGFault: a QEMU 7.2 TCG defect, not the move's).
func TestAccVirtualMachine_qemuDiskHotplugAndMove(t *testing.T) {
	lab := newTemplateLab(t)
	qemutest.RetryOnTCGFault(t, 2, func() func(*qemutest.Attempt) {
		return diskHotplugAndMove(t, lab)
	})
}

func diskHotplugAndMove(t *testing.T, lab templateLab) func(*qemutest.Attempt) {
	guest, template, local, vol := lab.guest, lab.template, lab.local, lab.vol
	dir := t.TempDir()
	iso := writeISO(t, "KAYO_TOOLS")
	qemutest.StartAgents(t, dir, guest, "Y-21-2k8x64", "Y-22-2k8x64")
	src, dst := qemutest.SerialPath(dir, "Y-21-2k8x64", "A"), qemutest.SerialPath(dir, "Y-22-2k8x64", "A")
	var id string
	var movedAt int
	bootRe := regexp.MustCompile(regexp.QuoteMeta(vol.BootLine()))
	return func(a *qemutest.Attempt) {
		resource.Test(a, resource.TestCase{
			ProtoV6ProviderFactories: protoV6,
			Steps: []resource.TestStep{
				{
					Config: diskQEMUHCL(dir, template, iso, "Y-21-2k8x64", 0),
					Check: func(*terraform.State) error {
						log, m, err := waitSerial(src, regexp.MustCompile(`kayo-guest: alive n=\d+ disk=\[kayo-guest-tick id=([0-9a-f]+) n=\d+\] dvd=\[KAYO_TOOLS\]`), 3*time.Minute)
						if err != nil {
							return err
						}
						if !bootRe.Match(log) {
							return fmt.Errorf("A did not boot from its disk (%q):\n%s", vol.BootLine(), log)
						}
						id = string(m[1])
						return nil
					},
				},
				{
					// A data disk added to the running VM: hot-plugged.
					Config: diskQEMUHCL(dir, template, iso, "Y-21-2k8x64", 1),
					ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction("kayo_virtual_machine.a", plancheck.ResourceActionUpdate)}},
					Check: func(*terraform.State) error {
						log, m, err := waitSerial(src, regexp.MustCompile(`kayo-guest: data disk vdb sectors=(\d+) marked id=`+id), time.Minute)
						if err != nil {
							return err
						}
						if want, _ := vhdfmt.RoundSize(1 << 30); string(m[1]) != strconv.FormatInt(want/512, 10) {
							return fmt.Errorf("the guest's vdb has %s sectors, want the 1 GiB data disk's %d", m[1], want/512)
						}
						if n := len(bootRe.FindAll(log, -1)); n != 1 {
							return fmt.Errorf("A booted %d times adding the data disk (want the running guest to get it):\n%s", n, log)
						}
						return nil
					},
				},
				{
					// Live migration by owner_node, the hot-plugged disk with it.
					Config: diskQEMUHCL(dir, template, iso, "Y-22-2k8x64", 1),
					ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction("kayo_virtual_machine.a", plancheck.ResourceActionUpdate)}},
					Check: func(s *terraform.State) error {
						if err := dbCheck(dir, func(ctx context.Context, e *engine.Engine) error {
							vm, err := e.GetVM(ctx, "HVCLUSTER", "A")
							if err != nil {
								return err
							}
							if vm.Node != "Y-22-2k8x64" || vm.LastMigration == nil || vm.LastMigration.Type != engine.MigrationLive || vm.LastMigration.ColdBoot != "" {
								return fmt.Errorf("A on %s, last migration %+v: want a live move to Y-22-2k8x64", vm.Node, vm.LastMigration)
							}
							return nil
						})(s); err != nil {
							return err
						}
						// Two ticks on the new node: the disk written and read back
						// there, the DVD read there.
						re := regexp.MustCompile(`kayo-guest: alive n=(\d+) disk=\[kayo-guest-tick id=` + id + ` n=(\d+)\] dvd=\[KAYO_TOOLS\]`)
						deadline := time.Now().Add(time.Minute)
						for {
							log, _ := os.ReadFile(dst)
							ms := re.FindAllSubmatch(log, -1)
							if len(ms) >= 2 {
								if bootRe.Match(log) {
									return fmt.Errorf("A booted again on Y-22:\n%s", log)
								}
								for _, m := range ms {
									if !bytes.Equal(m[1], m[2]) {
										return fmt.Errorf("A's tick %s read back tick %s on Y-22", m[1], m[2])
									}
								}
								movedAt, _ = strconv.Atoi(string(ms[0][1]))
								return nil
							}
							if a.GuestFaulted(log) {
								return fmt.Errorf("A's guest kernel faulted on Y-22 after the move:\n%s", log)
							}
							if time.Now().After(deadline) {
								return fmt.Errorf("A's console on Y-22 never showed two ticks of boot %s with its disk and DVD:\n%s", id, log)
							}
							time.Sleep(200 * time.Millisecond)
						}
					},
				},
				{
					Config: strings.Replace(diskQEMUHCL(dir, template, iso, "Y-22-2k8x64", 1), `state      = "running"`, `state      = "off"`, 1),
					Check: dbCheck(dir, func(ctx context.Context, e *engine.Engine) error {
						vols, err := e.ListVolumes(ctx, "HVCLUSTER")
						if err != nil || len(vols) != 1 {
							return fmt.Errorf("volumes %v %v", vols, err)
						}
						return e.WithVolume(ctx, vols[0].ID, "Y-22-2k8x64", func(fv *kayofs.Volume) error {
							if err := templateUnchanged(fv, local); err != nil {
								return err
							}
							vm, err := e.GetVM(ctx, "HVCLUSTER", "A")
							if err != nil {
								return err
							}
							if probs, err := engine.CheckVMDisk(fv, vm, "A/A.vhd"); err != nil || len(probs) > 0 {
								return fmt.Errorf("A's child disk: %v %v", probs, err)
							}
							d, _, err := engine.OpenVMDisk(fv, vm, "A/A.vhd")
							if err != nil {
								return err
							}
							sec := make([]byte, 512)
							if _, err := d.ReadAt(sec, guestimage.TickSector*512); err != nil {
								return err
							}
							m := regexp.MustCompile(`^kayo-guest-tick id=` + id + ` n=(\d+)`).FindSubmatch(sec)
							if m == nil {
								return fmt.Errorf("A's sector 3 holds %q, want a tick of boot %s", bytes.TrimRight(sec, "\x00"), id)
							}
							if last, _ := strconv.Atoi(string(m[1])); last < movedAt {
								return fmt.Errorf("A's last tick on its disk is %d, before the move's %d: the writes on Y-22 were lost", last, movedAt)
							}
							dd, _, err := engine.OpenVMDisk(fv, vm, "A/A-disk1.vhd")
							if err != nil {
								return err
							}
							if _, err := dd.ReadAt(sec, 0); err != nil {
								return err
							}
							if want := "kayo-guest-data vdb id=" + id; !bytes.HasPrefix(sec, []byte(want)) {
								return fmt.Errorf("A's data disk holds %q, want %q", bytes.TrimRight(sec, "\x00"), want)
							}
							return nil
						})
					}),
				},
			},
		})
	}
}
