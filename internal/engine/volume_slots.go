package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

// Nodes' slots on a volume: claimed when a node joins the volume's
// cluster, freed when it leaves or the volume goes. Claiming and freeing
// need the LUN, so one node's executor does it (nodework.go) and the
// control plane records the outcome: a plan or apply run where only the
// database is reachable opens no device (docs/ARCHITECTURE.md).

// volumeSlotsArgs asks a node's executor to free the slots of Remove and
// claim slots for Add on Volume.
type volumeSlotsArgs struct {
	Volume string   `json:"volume"`
	Add    []string `json:"add,omitempty"`
	Remove []string `json:"remove,omitempty"`
	// Empty refuses (force_destroy) while the volume holds entries, as
	// the first node of Remove sees it: the volume is being deleted.
	Empty bool `json:"empty,omitempty"`
}

// volumeSlotsOutcome is what the executor did: the slot each node of Add
// got (a node missing found none free: the cluster outgrew node_slots),
// and the new nodes' reports.
type volumeSlotsOutcome struct {
	Slots   map[string]int `json:"slots"`
	Reports []VolumeReport `json:"reports,omitempty"`
}

// volumeSlots has one node's executor change v's slots: a node that
// mounts v (or joins it) whose agent is up; with no such node, this
// process does it (the embedded lab, or a volume mounted nowhere).
func (e *Engine) volumeSlots(ctx context.Context, v Volume, a volumeSlotsArgs) (volumeSlotsOutcome, error) {
	nodes := sortedKeys(v.Mounts)
	for _, n := range a.Add {
		if !slices.Contains(nodes, n) {
			nodes = append(nodes, n)
		}
	}
	if len(nodes) == 0 {
		return e.slotsHere(ctx, a, e.reporter())
	}
	node, err := e.workNode(ctx, nodes)
	if err != nil {
		return volumeSlotsOutcome{}, fmt.Errorf("volume %s: changing its nodes' slots: %w", v.DriveLetter, err)
	}
	args, err := json.Marshal(a)
	if err != nil {
		return volumeSlotsOutcome{}, err
	}
	obj := volumeSlotsWorkObject(v.ID)
	res, err := e.nodeWork(ctx, node, WorkRequest{Op: workVolumeSlots, Object: obj, Args: args})
	if err != nil {
		return volumeSlotsOutcome{}, err
	}
	e.dropResult(ctx, node, obj, res) // read: done with (a deleted volume's would stay)
	var out volumeSlotsOutcome
	if err := json.Unmarshal(res.Outcome, &out); err != nil {
		return out, fmt.Errorf("volume %s: node %s's answer to %s: %w", v.DriveLetter, node, workVolumeSlots, err)
	}
	return out, nil
}

// slotsHere (run by a node's executor) frees and claims the slots of a,
// with the volume as this host resolves its LUN. Freeing a slot that is
// already free and claiming one a node already holds change nothing, so
// a re-run after a crash converges.
func (e *Engine) slotsHere(ctx context.Context, a volumeSlotsArgs, by string) (volumeSlotsOutcome, error) {
	out := volumeSlotsOutcome{Slots: map[string]int{}}
	v, err := e.GetVolume(ctx, a.Volume)
	if err != nil {
		return out, err
	}
	e.releaseVolumeMounts(v.ID) // this process's cached mounts (volume_mounts.go)
	fd, o, err := e.OpenVolumeMount(v)
	if err != nil {
		return out, err
	}
	defer fd.Close()
	for i, n := range a.Remove {
		fv, err := e.mountWaiting(ctx, fd, v, n, o) // its agent may hold it a moment (volume_mounts.go)
		if err != nil {
			return out, fmt.Errorf("volume %s: unmounting from %s: %w", v.DriveLetter, n, err)
		}
		if i == 0 && a.Empty {
			if err := refuseEntries(fv, v); err != nil {
				_ = detach(fv)
				return out, err
			}
		}
		if err := fv.Unmount(); err != nil {
			return out, fmt.Errorf("volume %s: unmounting from %s: %w", v.DriveLetter, n, err)
		}
	}
	var added []string
	for _, n := range a.Add {
		slot, err := mountNode(fd, n, o)
		if errors.Is(err, kayofs.ErrNoSlot) {
			continue // deferred until node_slots grows
		}
		if err != nil {
			return out, fmt.Errorf("mounting volume %s: on %s: %w", v.DriveLetter, n, err)
		}
		out.Slots[n] = slot
		added = append(added, n)
	}
	next := v
	next.Mounts = map[string]int{}
	for n, s := range v.Mounts {
		if !slices.Contains(a.Remove, n) {
			next.Mounts[n] = s
		}
	}
	for n, s := range out.Slots {
		next.Mounts[n] = s
	}
	out.Reports = e.reportsFromDevice(next, fd, added, by)
	return out, nil
}

// refuseEntries is the force_destroy refusal of a volume that still holds
// entries, as fv sees it.
func refuseEntries(fv *kayofs.Volume, v Volume) error {
	files, err := fv.ReadDir("")
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return nil
	}
	names := make([]string, 0, len(files))
	for _, f := range files {
		names = append(names, f.Name)
	}
	return &InputError{Attribute: "force_destroy", Value: "false",
		Detail: fmt.Sprintf("volume %s: (%s) still holds %d entries (%s); destroying it would lose them. "+
			"Remove them, or set force_destroy = true", v.DriveLetter, v.ID, len(files), strings.Join(first(names, 5), ", "))}
}

// removeLUNImage has a node's executor remove the embedded LUN image of
// a deleted volume v (its record is gone: v travels in the request); with
// no node, this process does.
func (e *Engine) removeLUNImage(ctx context.Context, v Volume, nodes []string) error {
	if !v.Embedded() {
		return nil
	}
	if len(nodes) == 0 {
		return e.lunImageHere(v)
	}
	node, err := e.workNode(ctx, nodes)
	if err != nil {
		return fmt.Errorf("volume %s: removing its LUN image: %w", v.DriveLetter, err)
	}
	args, err := json.Marshal(v)
	if err != nil {
		return err
	}
	obj := volumeImageWorkObject(v.ID)
	res, err := e.nodeWork(ctx, node, WorkRequest{Op: workLUNImageRemove, Object: obj, Args: args})
	if err != nil {
		return err
	}
	e.dropResult(ctx, node, obj, res)
	return nil
}

// lunImageHere removes v's embedded LUN image where this host keeps it.
func (e *Engine) lunImageHere(v Volume) error {
	e.resolveDevice(&v)
	if v.Device == "" {
		return nil
	}
	if err := os.Remove(v.Device); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("volume %s: removing LUN image %s: %w", v.DriveLetter, v.Device, err)
	}
	return nil
}
