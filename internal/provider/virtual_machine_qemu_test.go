package provider

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/qemutest"
)

// qemuLabHCL is the seed's two hosts, a cluster running the qemu driver,
// volume O: and a 128 MiB guest WEB01 pinned to owner, moved by migration
// (live or quick).
func qemuLabHCL(dir, owner, migration string) string {
	var b strings.Builder
	b.WriteString(qemuClusterHCL(dir, 8))
	fmt.Fprintf(&b, `resource "kayo_virtual_machine" "web" {
  cluster_id       = kayo_cluster.c.id
  volume_id        = kayo_shared_volume.o.id
  name             = "WEB01"
  memory_mb        = 128
  processor_count  = 1
  vhd              = { size_gib = 1, type = "dynamic" }
  network_adapters = []
  owner_node       = %q
  migration        = %q
}
`, owner, migration)
	return b.String()
}

// TestAccVirtualMachine_qemuLiveMigration boots the test guest under QEMU
// on Y-21 (node agents as `kayoctl agent` processes), changes owner_node,
// and proves the guest kept running across the live migration: its
// counter continues on Y-22 without a reset, the source QEMU process is
// gone, and records it wrote to its disk before the move read back after.
func TestAccVirtualMachine_qemuLiveMigration(t *testing.T) { testAccQEMUMigration(t, "live") }

// TestAccVirtualMachine_qemuQuickMigration is the same with migration =
// "quick": the guest is paused, its state saved into WEB01.vsv on the
// volume by Y-21's agent, its QEMU ended, and Y-22's agent restores it
// from that file: the same boot goes on (the counter continues), the
// source process is gone, and the disk records written before read back.
func TestAccVirtualMachine_qemuQuickMigration(t *testing.T) { testAccQEMUMigration(t, "quick") }

func testAccQEMUMigration(t *testing.T, migration string) {
	if os.Getenv(envTestEtcd) != "" {
		t.Skip("the QEMU test's node agents use the embedded data dir; it runs in the embedded acceptance runs")
	}
	if testing.Short() {
		t.Skip("QEMU acceptance test")
	}
	guest := qemutest.Guest(t)
	dir := t.TempDir()
	qemutest.StartAgents(t, dir, guest, "Y-21-2k8x64", "Y-22-2k8x64")
	var srcPID int
	var before []qemutest.Line
	serial := func(node string) string { return qemutest.SerialPath(dir, node, "WEB01") }
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{
				Config: qemuLabHCL(dir, "Y-21-2k8x64", migration),
				ConfigStateChecks: []statecheck.StateCheck{
					expectNode("Y-21-2k8x64"), expectAttr("status", "running"),
					statecheck.ExpectKnownValue("kayo_cluster.c", tfjsonpath.New("hypervisor"), knownvalue.StringExact("qemu")),
				},
				Check: func(*terraform.State) error {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					if err := qemutest.WaitCounter(ctx, serial("Y-21-2k8x64"), 3); err != nil {
						return err
					}
					return dbCheck(dir, func(ctx context.Context, e *engine.Engine) error {
						recs, err := e.QEMUNodeVMs(ctx, "HVCLUSTER", "WEB01")
						if err != nil || len(recs) != 1 || recs[0].Node != "Y-21-2k8x64" || !qemutest.Alive(recs[0].PID) {
							return fmt.Errorf("QEMU of WEB01: %+v %v, want one live process on Y-21-2k8x64", recs, err)
						}
						srcPID = recs[0].PID
						return nil
					})(nil)
				},
			},
			{
				Config: qemuLabHCL(dir, "Y-22-2k8x64", migration),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(res, plancheck.ResourceActionUpdate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					expectNode("Y-22-2k8x64"), expectAttr("status", "running"),
					statecheck.ExpectKnownValue(res, tfjsonpath.New("last_migration").AtMapKey("type"), knownvalue.StringExact(migration)),
					statecheck.ExpectKnownValue(res, tfjsonpath.New("last_migration").AtMapKey("from"), knownvalue.StringExact("Y-21-2k8x64")),
				},
				Check: func(s *terraform.State) error {
					lm := s.RootModule().Resources[res].Primary.Attributes
					t.Logf("last_migration: type %s, duration %s ms, downtime %s ms", lm["last_migration.type"],
						lm["last_migration.duration_ms"], lm["last_migration.downtime_ms"])
					if qemutest.Alive(srcPID) {
						return fmt.Errorf("the source QEMU (pid %d) still runs after the migration", srcPID)
					}
					before = qemutest.Counters(serial("Y-21-2k8x64"))
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					if len(before) == 0 {
						return fmt.Errorf("no counter on the source")
					}
					if err := qemutest.WaitCounter(ctx, serial("Y-22-2k8x64"), before[len(before)-1].N+2); err != nil {
						return err
					}
					msg, err := qemutest.Continues(before, qemutest.Counters(serial("Y-22-2k8x64")))
					if err != nil {
						return err
					}
					t.Log(msg)
					return dbCheck(dir, func(ctx context.Context, e *engine.Engine) error {
						procs, err := e.QEMUProcesses(ctx, "HVCLUSTER", "WEB01")
						if err != nil || len(procs) != 1 || !strings.HasPrefix(procs[0], "Y-22-2k8x64") {
							return fmt.Errorf("QEMU processes of WEB01: %v %v, want one on Y-22-2k8x64", procs, err)
						}
						return nil
					})(nil)
				},
			},
		},
	})
}
