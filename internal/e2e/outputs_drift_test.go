package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/nodeagent/workexec"
	"github.com/kayo-labs/terraform-provider-kayo/internal/testcli"
)

// TestOutputsAfterFailover pins down what the README's operations section
// says of outputs reading current_node: after a failover the stored output
// is stale, a plan shows only an output change (-detailed-exitcode 2),
// plan -refresh-only says the same, and apply -refresh-only takes the new
// facts in, after which the plan is empty (exit 0).
func TestOutputsAfterFailover(t *testing.T) {
	for _, cli := range testcli.CLIs(t) {
		t.Run(cli.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			dataDir := t.TempDir()
			mirror := testcli.NewMirror(t, testcli.KayoProvider(t))
			cfg := driftConfig(dataDir, "")
			wd := newWorkdir(t, cli, mirror, "drift", cfg)
			testcli.Must(t, wd.Init(ctx))
			testcli.Must(t, wd.Apply(ctx))
			if got := strings.TrimSpace(testcli.Must(t, wd.Run(ctx, "output", "-raw", "web_node")).Stdout); got != y21 {
				t.Fatalf("web_node = %q, want %s", got, y21)
			}

			// Y-21 fails (kayoctl host fail): WEB01 fails over to Y-22.
			e, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: dataDir})
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.MarkHostDown(ctx, y21, engine.DownByLab)
			vm, gerr := e.GetVM(ctx, "HVCLUSTER", "WEB01")
			e.Close()
			if err != nil || gerr != nil || vm.Node != y22 {
				t.Fatalf("failover: %v %v, WEB01 on %q", err, gerr, vm.Node)
			}

			// The stored output is stale until a refresh is saved.
			if got := strings.TrimSpace(testcli.Must(t, wd.Run(ctx, "output", "-raw", "web_node")).Stdout); got != y21 {
				t.Errorf("stored web_node after the failover = %q, want the stale %s", got, y21)
			}
			changes, r := wd.Plan(ctx)
			testcli.Must(t, r)
			out := r.Stdout
			if !changes || !strings.Contains(out, "Changes to Outputs") || !strings.Contains(out, fmt.Sprintf("%q -> %q", y21, y22)) ||
				strings.Contains(out, "to add") {
				t.Errorf("plan after the failover: want only the output change (exit 2), got changes=%v:\n%s", changes, out)
			}
			changes, r = wd.Plan(ctx, "-refresh-only")
			testcli.Must(t, r)
			if !changes {
				t.Errorf("plan -refresh-only after the failover: want exit 2:\n%s", r.Stdout)
			}
			testcli.Must(t, wd.Apply(ctx, "-refresh-only"))
			if got := strings.TrimSpace(testcli.Must(t, wd.Run(ctx, "output", "-raw", "web_node")).Stdout); got != y22 {
				t.Errorf("web_node after apply -refresh-only = %q, want %s", got, y22)
			}
			changes, r = wd.Plan(ctx)
			testcli.Must(t, r)
			if changes {
				t.Errorf("plan after apply -refresh-only: want exit 0:\n%s", r.Stdout)
			}
			// Y-21 back, the witness cluster can return to node_majority
			// on destroy (with it dead for good, force_destroy would be
			// needed: internal/provider/day2_test.go).
			if e, err = engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: dataDir}); err != nil {
				t.Fatal(err)
			}
			_, err = e.MarkHostUp(ctx, y21)
			e.Close()
			if err != nil {
				t.Fatal(err)
			}
			testcli.Must(t, wd.Destroy(ctx))
		})
	}
}

// driftConfig is the seed's cluster with WEB01 (pinned to owner when not
// "") and an output of its current_node.
func driftConfig(dataDir, owner string) string {
	pin := ""
	if owner != "" {
		pin = fmt.Sprintf("  owner_node       = %q\n", owner)
	}
	return providerBlock(dataDir, "60s") + hostBlock("y21", y21, 21) + hostBlock("y22", y22, 22) + `
resource "kayo_cluster" "c" {
  name           = "HVCLUSTER"
  nodes          = [kayo_host.y21.name, kayo_host.y22.name]
  static_address = "192.0.2.50/24"
}
resource "kayo_quorum" "q" {
  cluster_id    = kayo_cluster.c.id
  type          = "node_and_file_share_majority"
  witness_share = "\\\\FS01\\witness"
}
resource "kayo_shared_volume" "o" {
  cluster_id   = kayo_cluster.c.id
  lun          = "lun0"
  size_gib     = 4
  label        = "VMSTORE"
  drive_letter = "O"
}
resource "kayo_virtual_machine" "web" {
  cluster_id       = kayo_quorum.q.id
  volume_id        = kayo_shared_volume.o.id
  name             = "WEB01"
  memory_mb        = 2048
  vhd              = { size_gib = 4 }
  preferred_owners = ["` + y21 + `", "` + y22 + `"]
` + pin + `}
output "web_node" {
  value = kayo_virtual_machine.web.current_node
}
`
}

// TestPlannedMoveDoneMeanwhile applies a saved plan that migrates WEB01
// back to its owner_node after something else (the leader's failback, a
// drain, another run) already did: the CLI plans it again at apply, and
// what apply returns must match that plan. Before, that plan kept the
// prior last_migration (null) for a VM the engine had moved since the
// refresh, and the CLI failed the apply ("Provider produced inconsistent
// result after apply": seen in CI when the leader moved a VM in the
// middle of an apply).
func TestPlannedMoveDoneMeanwhile(t *testing.T) {
	for _, cli := range testcli.CLIs(t) {
		t.Run(cli.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			dataDir := t.TempDir()
			mirror := testcli.NewMirror(t, testcli.KayoProvider(t))
			wd := newWorkdir(t, cli, mirror, "moved", driftConfig(dataDir, y21))
			testcli.Must(t, wd.Init(ctx))
			testcli.Must(t, wd.Apply(ctx))
			withEngine := func(fn func(*engine.Engine) error) {
				t.Helper()
				e, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: dataDir})
				if err != nil {
					t.Fatal(err)
				}
				defer e.Close()
				if err := fn(e); err != nil {
					t.Fatal(err)
				}
			}
			// Y-21 fails and comes back: WEB01 stays on Y-22 until an
			// apply moves it home.
			withEngine(func(e *engine.Engine) error {
				if _, err := e.MarkHostDown(ctx, y21, engine.DownByLab); err != nil {
					return err
				}
				_, err := e.MarkHostUp(ctx, y21)
				return err
			})
			plan := filepath.Join(wd.Dir, "home.tfplan")
			changes, r := wd.Plan(ctx, "-out="+plan)
			testcli.Must(t, r)
			if !changes || !strings.Contains(r.Stdout, fmt.Sprintf("%q -> %q", y22, y21)) {
				t.Fatalf("plan after the failover: want WEB01 moved home to %s:\n%s", y21, r.Stdout)
			}
			// Moved home meanwhile, as the plan asks.
			withEngine(func(e *engine.Engine) error {
				vm, err := e.GetVM(ctx, "HVCLUSTER", "WEB01")
				if err != nil {
					return err
				}
				if vm, err = e.UpdateVM(ctx, vm.VMSpec); err == nil && vm.Node != y21 {
					err = fmt.Errorf("WEB01 on %s after its move home, want %s", vm.Node, y21)
				}
				return err
			})
			testcli.Must(t, wd.Apply(ctx, plan))
			if got := strings.TrimSpace(testcli.Must(t, wd.Run(ctx, "output", "-raw", "web_node")).Stdout); got != y21 {
				t.Errorf("web_node after the apply = %q, want %s", got, y21)
			}
			if changes, r := wd.Plan(ctx); r.Err != nil || changes {
				t.Errorf("plan after the apply: want exit 0 (%v):\n%s", r.Err, r.Stdout)
			}
			testcli.Must(t, wd.Destroy(ctx))
		})
	}
}
