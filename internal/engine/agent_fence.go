package engine

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// Self-fencing of a node's Kayo FS mounts, as the cluster sees it. A mount
// whose lock manager could not renew its lease in time stops writing to
// the volume (kayofs ErrFenced) before any other node may recover its
// slot (kayofs/lease.go, kayofs/etcdlock). The process that held the mount
// then stops every VM of that node whose storage is on the volume: QEMU
// through the node agent, which kills the process, the simulator through
// its records; the VM reads failed, saying why. The other nodes' waits
// for the silent lease and their recovery of its slot are events too, so
// `kayoctl events` tells the whole take-over.

// Lease event kinds (kayofs/events.go).
const (
	// EventVolumeNodeFenced: a node's mount of the volume fenced itself.
	EventVolumeNodeFenced = "volume.node_fenced"
	// EventVolumeRecoveryWait: a node waits for another's lease to
	// expire, plus the safety margin, before recovering its slot.
	EventVolumeRecoveryWait = "volume.recovery_wait"
	// EventVolumeJournalRecovered: a node recovered a dead mount's slot
	// (its journal replayed).
	EventVolumeJournalRecovered = "volume.journal_recovered"
)

// fenceRecordTimeout bounds the records and VM stops of one lease event.
const fenceRecordTimeout = 2 * time.Minute

// volumeRecoveriesPrefix holds one key per dead mount recovered
// (volume/slot/mount generation): several processes may each recover the
// same dead mount; the history says it once.
const volumeRecoveriesPrefix = "volume-recoveries/"

// leaseEvents returns the lease event handler of the mounts of v: it
// returns at once (lock managers call it with their locks held) and
// records in the background.
func (e *Engine) leaseEvents(v Volume) func(kayofs.LeaseEvent) {
	return func(ev kayofs.LeaseEvent) {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), fenceRecordTimeout)
			defer cancel()
			if err := e.recordLeaseEvent(ctx, v, ev); err != nil {
				log.Printf("volume %s: recording %s of %s: %v", v.DriveLetter, ev.Kind, ev.Node, err)
			}
		}()
	}
}

// hostOfMount is the host node a mount name belongs to: the node agent's
// own mounts are "<node>#<use>" (internal/nodeagent/qemurun: MountSuffix).
func hostOfMount(mount string) string {
	n, _, _ := strings.Cut(mount, "#")
	return n
}

// recordLeaseEvent writes ev as an event of v and, for a fence, stops the
// node's VMs on v.
func (e *Engine) recordLeaseEvent(ctx context.Context, v Volume, ev kayofs.LeaseEvent) error {
	node := hostOfMount(ev.Node)
	d := map[string]string{"node": node, "mount": ev.Node, "drive_letter": v.DriveLetter,
		"lease_timeout": ev.Lease.String(), "margin": ev.Margin.String()}
	if ev.Slot >= 0 {
		d["slot"] = fmt.Sprint(ev.Slot)
	}
	if ev.Why != "" {
		d["reason"] = ev.Why
	}
	out := Event{Cluster: v.Cluster, Subject: v.ID, Detail: d}
	var cmps []store.Cmp
	var ops []store.Op
	switch ev.Kind {
	case kayofs.LeaseFenced:
		return e.volumeNodeFenced(ctx, v, node, ev, out)
	case kayofs.LeaseRecoveryWait:
		out.Kind = EventVolumeRecoveryWait
		d["peer"] = hostOfMount(ev.Peer)
		d["wait"] = ev.Wait.Round(time.Millisecond).String()
		d["message"] = fmt.Sprintf("node %s waits %.1f s more (lease %v + margin %v of silence) before recovering %s's slot on volume %s",
			node, ev.Wait.Seconds(), ev.Lease, ev.Margin, hostOfMount(ev.Peer), v.DriveLetter)
	case kayofs.LeaseRecovered:
		out.Kind = EventVolumeJournalRecovered
		d["peer"] = hostOfMount(ev.Peer)
		d["peer_mount"] = ev.Peer
		d["replayed"] = fmt.Sprint(ev.Replayed)
		d["mount_generation"] = fmt.Sprint(ev.MountGen)
		d["message"] = fmt.Sprintf("node %s recovered %s's journal (slot %d) on volume %s", node, hostOfMount(ev.Peer), ev.Slot, v.DriveLetter)
		delete(d, "lease_timeout")
		delete(d, "margin")
		key := fmt.Sprintf("%s%s/%d/%d", volumeRecoveriesPrefix, v.ID, ev.Slot, ev.MountGen)
		cmps = []store.Cmp{store.Absent(key)}
		ops = []store.Op{putJSON(key, d)}
	default:
		return fmt.Errorf("unknown lease event %q", ev.Kind)
	}
	_, err := e.st.Commit(ctx, cmps, append(ops, e.eventOp(out)))
	if errors.Is(err, store.ErrConflict) {
		return nil // another process recorded that recovery
	}
	return err
}

// volumeNodeFenced records that node's mount of v fenced itself, naming
// the VMs of node whose storage is on v, then stops each one and records
// it failed with the reason (its own event, vm.failed).
func (e *Engine) volumeNodeFenced(ctx context.Context, v Volume, node string, ev kayofs.LeaseEvent, out Event) error {
	reason := fmt.Sprintf("node %s fenced itself on volume %s (%s): its VMs there were stopped; apply starts them again",
		node, v.DriveLetter, ev.Why)
	vms, err := e.ListVMs(ctx, v.Cluster)
	if err != nil {
		return err
	}
	var stop []VM
	var names []string
	for _, vm := range vms {
		if vm.Node == node && vm.Volume == v.ID && (vm.Status == VMRunning || vm.Status == StatusMigrating) {
			stop, names = append(stop, vm), append(names, vm.Name)
		}
	}
	out.Kind = EventVolumeNodeFenced
	out.Detail["vms_stopping"] = strings.Join(names, ",")
	out.Detail["message"] = fmt.Sprintf("node %s fenced itself on volume %s (%s); stopping its %d VM(s) there", node, v.DriveLetter, ev.Why, len(stop))
	if _, err := e.st.Commit(ctx, nil, []store.Op{e.eventOp(out)}); err != nil {
		return err
	}
	var errs []error
	for _, vm := range stop {
		if err := e.failVM(ctx, vm, reason, true); err != nil {
			// Not stopped (its agent is gone, say): recorded failed all
			// the same; its disk writes fail anyway (fenced).
			errs = append(errs, fmt.Errorf("VM %s: stopping it: %w", vm.Name, err))
			if err := e.failVM(ctx, vm, fmt.Sprintf("%s (stopping its process failed: %v)", reason, err), false); err != nil {
				errs = append(errs, fmt.Errorf("VM %s: recording it failed: %w", vm.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}
