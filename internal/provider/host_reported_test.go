package provider

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/hostfacts"
	"github.com/kayo-labs/terraform-provider-kayo/internal/nodeagent/workexec"
	"github.com/kayo-labs/terraform-provider-kayo/internal/testcli"
)

// kayo_host.reported is null without an agent, and after a real `kayoctl
// agent` for the host has run, a refresh shows this machine as it
// reported it.
func TestAccHost_reported(t *testing.T) {
	if os.Getenv("TF_ACC") == "" {
		t.Skip("acceptance test: set TF_ACC=1")
	}
	dir := t.TempDir()
	h := seedHost("y21", "Y-21-2k8x64", 21)
	me, err := hostfacts.Collect(context.Background(), hostfacts.Options{QEMU: "-"})
	if err != nil {
		t.Fatal(err)
	}
	bin := testcli.Build(t, "./cmd/kayoctl")
	startAgent := func() {
		cmd := exec.Command(bin, "--data-dir", dir, "agent", "--node", "Y-21-2k8x64", "--interval", "200ms")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		deadline := time.Now().Add(30 * time.Second)
		for {
			e, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: dir})
			if err == nil {
				_, _, err = e.HostReport(context.Background(), "Y-21-2k8x64")
				_ = e.Close()
			}
			if err == nil {
				return
			}
			if !errors.Is(err, engine.ErrNotFound) || time.Now().After(deadline) {
				t.Fatalf("no report from the agent: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{
				Config: plainProviderBlock(dir) + h.hcl(),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("kayo_host.y21", tfjsonpath.New("reported"), knownvalue.Null()),
				},
			},
			{
				PreConfig: startAgent,
				Config:    plainProviderBlock(dir) + h.hcl(),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("kayo_host.y21", tfjsonpath.New("reported").AtMapKey("memory_mb"), knownvalue.Int64Exact(me.MemoryMB)),
					statecheck.ExpectKnownValue("kayo_host.y21", tfjsonpath.New("reported").AtMapKey("processor_cores"), knownvalue.Int64Exact(int64(me.ProcessorCores))),
					statecheck.ExpectKnownValue("kayo_host.y21", tfjsonpath.New("reported").AtMapKey("stale"), knownvalue.Bool(false)),
				},
			},
		},
	})
}
