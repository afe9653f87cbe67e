package engine

import "context"

// reconcileFailover is the extension point where node failure meets the
// cluster's VMs. NOT IMPLEMENTED YET: there are no VMs until the
// virtual-machine work (issue 4) lands, so today it does nothing.
//
// It is called after every commit that changes a node's state (the lab's
// MarkHostDown / MarkHostUp, and the leader agent's heartbeat decisions),
// and by the leader agent on every tick for its cluster, so it must be
// idempotent and work from the committed database alone (a crash between
// the node-state commit and this call is caught up on the next tick).
//
// What the VM work is to fill in, per DESIGN.md "Failure semantics":
//   - quorum lost (EvaluateQuorum(...).HasQuorum false): stop every VM of
//     the cluster (no split brain);
//   - a node down while quorum holds: restart its VMs on surviving nodes
//     (preferred owners first, then any possible owner with capacity),
//     within each VM's max_failures per failure_period_hours, else leave the
//     VM failed with status_reason; replay the dead node's Kayo FS journal;
//   - quorum regained: restart the VMs that were stopped for it;
//   - a node up: failback per each VM's failback policy.
//
// Each VM move must be an ownership change carrying a fencing token,
// recorded as an event in the same commit, so tests can assert from the
// event history that no two nodes ever ran the same VM.
func (e *Engine) reconcileFailover(ctx context.Context, cluster string) error {
	_ = ctx
	_ = cluster
	return nil
}
