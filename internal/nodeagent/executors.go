package nodeagent

import (
	"context"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/nodeagent/qemurun"
	"github.com/kayo-labs/terraform-provider-kayo/internal/nodeagent/workexec"
)

// startQEMU runs the agent's QEMU runner (the VMs of qemu clusters on
// this node, their NBD disks; qemurun) beside the
// heartbeat loop; the returned function stops it and waits until its QEMU
// processes are gone.
func startQEMU(ctx context.Context, e *engine.Engine, node, agentID, migrationAddress string, logf func(string, ...any)) func() {
	qctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := qemurun.New(e, node, agentID, qemurun.Config{Logf: logf, MigrationAddress: migrationAddress}).Run(qctx); err != nil {
			logf("qemu runner: %v", err)
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// startWork runs the agent's work executor (its node's data plane: the
// VMs' files on the shared volumes) beside the heartbeat loop; the
// returned function stops it and waits for the work it runs.
func startWork(ctx context.Context, e *engine.Engine, node, agentID string, logf func(string, ...any)) func() {
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := workexec.New(e, workexec.Config{Node: node, Agent: agentID, Logf: logf}).Run(wctx); err != nil {
			logf("work executor: %v", err)
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
