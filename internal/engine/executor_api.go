package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// What the node agents' executors (internal/nodeagent/...) call in the
// engine besides its reads (GetVM, GetVolume, GetHost, GetCluster,
// ListSwitches, ...) and the store: the engine decides and records, an
// executor applies on its node (docs/ARCHITECTURE.md, "Control plane and
// node agents"). Keep this surface small.

// Event kinds of a node's QEMU runner (internal/nodeagent/qemurun).
const (
	// EventVMQEMUExited: a VM's QEMU process exited without being asked to.
	EventVMQEMUExited = "vm.qemu_exited"
	// EventVMQEMUStopped: a VM's QEMU process ended with its node agent
	// (the agent stopped, or a successor found it gone).
	EventVMQEMUStopped = "vm.qemu_stopped"
)

// Now is the engine's clock, which records written beside its own use.
func (e *Engine) Now() time.Time { return e.now() }

// EventOp is the write of ev into the cluster's event history, for an
// executor's own commits.
func (e *Engine) EventOp(ev Event) store.Op { return e.eventOp(ev) }

// MountWaiting mounts volume v's device fd (opened by OpenVolumeMount)
// as name (a node slot of its own, e.g. "<node>#qemu"), waiting while an
// earlier process of the same name still holds it, up to the lock timeout
// (volume_mounts.go).
func (e *Engine) MountWaiting(ctx context.Context, fd *kayofs.FileDevice, v Volume, name string, o kayofs.MountOptions) (*kayofs.Volume, error) {
	return e.mountWaiting(ctx, fd, v, name, o)
}

// VMEnded is what a node's executor reports of a VM whose process ended
// there: Status (VMOff or StatusFailed) and Reason for the VM, and the
// executor's own records of it (Record), committed together.
type VMEnded struct {
	Node   string
	Status string
	Reason string
	// Record returns the comparisons and writes of the node's own record
	// of the VM and the token it ran the VM with; ok false: it ran
	// nothing here (then nothing is committed). It may be called more
	// than once (each attempt reads afresh).
	Record func() (cmps []store.Cmp, ops []store.Op, tok hypervisor.Token, ok bool, err error)
}

// CommitVMEnded commits the end of VM cluster/name's process on end.Node:
// when the VM still runs there by its own record (that node, the same
// token, no operation in flight) its status and reason change with the
// node's record and an event (vm.stopped or vm.failed), fenced by the
// VM's revision; else nothing is committed and changed is false (another
// operation owns the VM and judges it), and the executor commits its
// record alone.
func (e *Engine) CommitVMEnded(ctx context.Context, cluster, name string, end VMEnded) (changed bool, err error) {
	_, err = e.vmCommit(ctx, cluster, name, func(t *vmTxn) error {
		changed = false
		cmps, ops, tok, ok, err := end.Record()
		if err != nil {
			return err
		}
		if !ok || !t.exists || t.vm.Node != end.Node || t.vm.Token != int64(tok) || t.vm.Pending != nil || t.vm.Status != VMRunning {
			return errNoCommit
		}
		t.cmps, t.ops = append(t.cmps, cmps...), append(t.ops, ops...)
		t.vm.Status, t.vm.StatusReason = end.Status, end.Reason
		kind := EventVMStopped
		if end.Status == StatusFailed {
			kind = EventVMFailed
		}
		t.event(kind, map[string]string{"node": end.Node, "reason": end.Reason, "token": fmt.Sprint(t.vm.Token)})
		changed = true
		return nil
	})
	return changed, err
}
