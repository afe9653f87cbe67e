package provider

import (
	"context"
	"fmt"
	"os"
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

// expectPriorStatus checks the value a resource's status had before the
// plan (after its refresh).
type expectPriorStatus struct{ res, status string }

func (c expectPriorStatus) CheckPlan(_ context.Context, req plancheck.CheckPlanRequest, resp *plancheck.CheckPlanResponse) {
	for _, rc := range req.Plan.ResourceChanges {
		if rc.Address != c.res {
			continue
		}
		before, _ := rc.Change.Before.(map[string]any)
		if got := before["status"]; got != c.status {
			resp.Error = fmt.Errorf("%s: status before the plan is %v, want %q", c.res, got, c.status)
		}
		return
	}
	resp.Error = fmt.Errorf("%s: not in the plan", c.res)
}

// TestAccVirtualMachine_qemuAgentRestart: the node agent running WEB01's
// QEMU is stopped (SIGTERM, as a service manager restarts it) and started
// again. Its QEMU process ended with it; the VM reads off at once, the
// next plan shows the in-place update that starts it (state off →
// running), and apply boots the guest again.
func TestAccVirtualMachine_qemuAgentRestart(t *testing.T) {
	if os.Getenv(envTestEtcd) != "" {
		t.Skip("the QEMU test's node agents use the embedded data dir; it runs in the embedded acceptance runs")
	}
	if testing.Short() {
		t.Skip("QEMU acceptance test")
	}
	guest := qemutest.Guest(t)
	dir := t.TempDir()
	agents := qemutest.StartAgents(t, dir, guest, "Y-21-2k8x64", "Y-22-2k8x64")
	serial := qemutest.SerialPath(dir, "Y-21-2k8x64", "WEB01")
	qemuPID := func() (int, error) {
		var pid int
		err := dbCheck(dir, func(ctx context.Context, e *engine.Engine) error {
			recs, err := e.QEMUNodeVMs(ctx, "HVCLUSTER", "WEB01")
			if err != nil || len(recs) != 1 || recs[0].Node != "Y-21-2k8x64" || !qemutest.Alive(recs[0].PID) {
				return fmt.Errorf("QEMU of WEB01: %+v %v, want one live process on Y-21-2k8x64", recs, err)
			}
			pid = recs[0].PID
			return nil
		})(nil)
		return pid, err
	}
	var pid int
	var bootID string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{
				Config: qemuLabHCL(dir, "Y-21-2k8x64", "live"),
				Check: func(*terraform.State) error {
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					defer cancel()
					if err := qemutest.WaitCounter(ctx, serial, 2); err != nil {
						return err
					}
					c := qemutest.Counters(serial)
					bootID = c[len(c)-1].ID
					var err error
					pid, err = qemuPID()
					return err
				},
			},
			{
				PreConfig: func() {
					agents[0].Stop(t) // SIGTERM
					for i := 0; i < 500 && qemutest.Alive(pid); i++ {
						time.Sleep(10 * time.Millisecond)
					}
					if qemutest.Alive(pid) {
						t.Fatalf("QEMU pid %d still runs after its agent stopped", pid)
					}
					// Read at once, before the agent is back.
					err := dbCheck(dir, func(ctx context.Context, e *engine.Engine) error {
						vm, err := e.RefreshVM(ctx, "HVCLUSTER", "WEB01")
						if err != nil || vm.Status != engine.VMOff || vm.StatusReason == "" {
							return fmt.Errorf("WEB01 right after its agent stopped: %s (%q) %v, want off with a reason", vm.Status, vm.StatusReason, err)
						}
						return nil
					})(nil)
					if err != nil {
						t.Fatal(err)
					}
					qemutest.StartAgents(t, dir, guest, "Y-21-2k8x64")
				},
				Config: qemuLabHCL(dir, "Y-21-2k8x64", "live"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					expectPriorStatus{res, engine.VMOff},
					plancheck.ExpectResourceAction(res, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(res, tfjsonpath.New("state"), knownvalue.StringExact(engine.VMRunning)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{expectAttr("status", engine.VMRunning), expectAttr("status_reason", "")},
				Check: func(*terraform.State) error {
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					defer cancel()
					for {
						c := qemutest.Counters(serial)
						if len(c) > 0 && c[len(c)-1].ID != bootID {
							break
						}
						select {
						case <-ctx.Done():
							return fmt.Errorf("no new boot of WEB01 after the apply")
						case <-time.After(50 * time.Millisecond):
						}
					}
					p, err := qemuPID()
					if err == nil && p == pid {
						return fmt.Errorf("WEB01 runs in the old QEMU pid %d", p)
					}
					return err
				},
			},
		},
	})
}
