package engine

import (
	"context"
	"errors"
	"fmt"
)

// What reads of a VM say about its runtime beyond the VM's record: a
// running VM of a qemu cluster runs in a QEMU process of its node's agent
// and ends with it. An agent that stops records the VMs it stopped, and
// the next agent of a node records those its predecessor left
// (internal/nodeagent/qemurun/stop.go); between a crashed agent and its successor (or the
// leader's failover of a node that stays silent) the record still says
// running, so reads check that the agent runs.

// observe returns vm as reads show it: failed, with the reason, when it
// should run in a QEMU process of a node agent that is not running.
// Nothing is written; down caches agentDown per node.
func (e *Engine) observe(ctx context.Context, vm VM, down map[string]error) VM {
	if vm.Pending != nil || vm.Status != VMRunning || vm.Node == "" {
		return vm
	}
	err, ok := down[vm.Node]
	if !ok {
		err = e.agentDown(ctx, vm)
		down[vm.Node] = err
	}
	if err != nil {
		vm.Status = StatusFailed
		vm.StatusReason = fmt.Sprintf("its QEMU process ended with the node agent of %s (%v); apply starts it again once the agent runs", vm.Node, err)
	}
	return vm
}

// agentDown is why vm's node cannot be running it (its node agent is not
// running, for a qemu cluster), or nil.
func (e *Engine) agentDown(ctx context.Context, vm VM) error {
	if vm.Node == "" {
		return nil
	}
	c, err := e.clusterHead(ctx, vm.Cluster)
	if err != nil || c.Hypervisor != HypervisorQEMU {
		return nil
	}
	if err := e.qemuAgentUp(ctx, vm.Node); errors.Is(err, ErrAgentDown) {
		return err
	}
	return nil // up, or unknown (a failed read): the record stands
}

// ObservedVMs is ListVMs as reads show the VMs (observe): what `kayoctl
// vm list` prints.
func (e *Engine) ObservedVMs(ctx context.Context, cluster string) ([]VM, error) {
	vms, err := e.ListVMs(ctx, cluster)
	if err != nil {
		return nil, err
	}
	down := map[string]error{}
	for i := range vms {
		vms[i] = e.observe(ctx, vms[i], down)
	}
	return vms, nil
}

// ObservedVM is GetVM as reads show the VM (observe).
func (e *Engine) ObservedVM(ctx context.Context, cluster, name string) (VM, error) {
	vm, err := e.GetVM(ctx, cluster, name)
	if err != nil {
		return vm, err
	}
	return e.observe(ctx, vm, map[string]error{}), nil
}
