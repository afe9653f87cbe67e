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
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// EventVolumeUpdated records an in-place change of a volume.
const EventVolumeUpdated = "volume.updated"

// CheckVolumeChange judges an in-place change against the prior spec:
// cluster, lun and block size need a new volume; size and node slots only
// grow.
func CheckVolumeChange(old, s VolumeSpec) error {
	switch {
	case s.Cluster != old.Cluster:
		return &InputError{Attribute: "cluster_id", Value: s.Cluster,
			Detail: fmt.Sprintf("a volume cannot move from cluster %q to %q in place; it is replaced", old.Cluster, s.Cluster)}
	case s.LUN != old.LUN:
		return &InputError{Attribute: "lun", Value: s.LUN,
			Detail: fmt.Sprintf("a volume cannot move from LUN %q to %q in place; it is replaced", old.LUN, s.LUN)}
	case s.DeviceID != old.DeviceID || (s.DevicePaths == nil) != (old.DevicePaths == nil):
		return &InputError{Attribute: "device_id", Value: s.DeviceID,
			Detail: fmt.Sprintf("a volume cannot move from %s to %s in place; it is replaced", lunName(old), lunName(s))}
	case s.BlockSize != old.BlockSize:
		return &InputError{Attribute: "block_size", Value: fmt.Sprint(s.BlockSize),
			Detail: fmt.Sprintf("the block size (%d) is fixed when formatting; changing it replaces the volume", old.BlockSize)}
	case s.SizeGiB < old.SizeGiB:
		return &InputError{Attribute: "size_gib", Value: fmt.Sprint(s.SizeGiB),
			Detail: fmt.Sprintf("cannot shrink the volume from %d GiB to %d GiB: Kayo FS volumes only grow. "+
				"Keep %d GiB or more (or give a new lun to start over on a new volume)", old.SizeGiB, s.SizeGiB, old.SizeGiB)}
	case s.NodeSlots < old.NodeSlots:
		return &InputError{Attribute: "node_slots", Value: fmt.Sprint(s.NodeSlots),
			Detail: fmt.Sprintf("cannot go from %d to %d node slots: slots can be added, not removed", old.NodeSlots, s.NodeSlots)}
	}
	return nil
}

// CheckVolumePlan judges, from the committed database and the LUN, what a
// plan can. For a new volume (id ""): the cluster's node count against
// node_slots, and a LUN path that is not a block device (file_backed), is
// smaller than size_gib, is mounted elsewhere or holds anything
// (judgeLUN). A LUN or drive letter that a recorded volume
// holds is left to apply: Terraform plans a replacement's create without
// saying which volume it replaces, and apply destroys that one first. For
// an existing volume: the in-place change (shrink), node slots, and a new
// drive letter already taken in the cluster. Things created in the same
// apply (a missing cluster) pass; apply re-checks everything.
func (e *Engine) CheckVolumePlan(ctx context.Context, id string, s VolumeSpec) error {
	if err := CheckVolumeSpec(s); err != nil {
		return err
	}
	if c, err := e.GetCluster(ctx, s.Cluster); err == nil {
		if s.NodeSlots < len(c.Nodes) {
			return slotsError(s.NodeSlots, c)
		}
		if err := checkDevicePathsNodes(s, c); err != nil {
			return err
		}
		if id == "" {
			if err := e.nodesSeeLUN(ctx, s, c); err != nil {
				return err
			}
		}
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	if id != "" {
		v, err := e.GetVolume(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := CheckVolumeChange(v.VolumeSpec, s); err != nil {
			return err
		}
		if v.DriveLetter != s.DriveLetter {
			if other, err := e.volumeByLetter(ctx, s.Cluster, s.DriveLetter); err == nil && other.ID != v.ID {
				return letterTaken(s, other)
			} else if err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		return nil
	}
	dev, err := e.devicePath(s)
	if err != nil {
		return err
	}
	vs, err := e.ListVolumes(ctx, "")
	if err != nil {
		return err
	}
	for _, v := range vs {
		if v.Device == dev {
			return nil // a recorded volume's LUN: apply judges (see above)
		}
	}
	if _, err := os.Stat(dev); err != nil && e.remoteDB && s.DeviceID == "" && s.DevicePaths == nil {
		// A control plane on etcd need not hold the LUN: the nodes'
		// reports were checked above, and the formatting node judges it
		// at apply.
		return nil
	}
	if err := e.checkLUNKind(s, dev); err != nil {
		return err
	}
	if _, err := os.Stat(dev); err != nil {
		if s.DeviceID != "" || s.DevicePaths != nil {
			return nil // each node resolves it: not this machine's to judge
		}
		if !s.Embedded() {
			return &InputError{Attribute: "lun", Value: s.LUN, Detail: fmt.Sprintf("%q: %v", s.LUN, pathCause(err))}
		}
		return nil // created at apply
	}
	_, err = e.judgeExisting(s, dev)
	return err
}

func slotsError(slots int, c Cluster) error {
	return &InputError{Attribute: "node_slots", Value: fmt.Sprint(slots),
		Detail: fmt.Sprintf("%d node slots are fewer than the %d nodes of cluster %q (%s); every node mounts the volume in a slot of its own. "+
			"Set node_slots to at least %d (at most %d)", slots, len(c.Nodes), c.Name, strings.Join(c.Nodes, ", "), len(c.Nodes), kayofs.MaxSlots)}
}

func letterTaken(s VolumeSpec, other Volume) error {
	return &InputError{Attribute: "drive_letter", Value: s.DriveLetter,
		Detail: fmt.Sprintf("%s: is already volume %s (%s) of cluster %q; drive letters are unique per cluster",
			s.DriveLetter, other.ID, other.Label, s.Cluster)}
}

func existingFS(s VolumeSpec, dev, found string) error {
	return &InputError{Attribute: "force_format", Value: "false",
		Detail: fmt.Sprintf("LUN %q (%s) already holds a %s file system; formatting would destroy it. "+
			"Set force_format = true to format it anyway", s.LUN, dev, found)}
}

// mountedElsewhere refuses a LUN whose Kayo FS some node still mounts
// (force_format does not override it).
func mountedElsewhere(fd *kayofs.FileDevice, s VolumeSpec) error {
	slots, err := kayofs.Slots(fd)
	if err != nil {
		return nil // not a (readable) Kayo FS: Probe judges it
	}
	var by []string
	for _, si := range slots {
		switch si.State {
		case "mounted", "detached":
			by = append(by, fmt.Sprintf("%s (slot %d)", si.Node, si.Slot))
		case "dead":
			by = append(by, fmt.Sprintf("%s (slot %d, crashed while mounted: recover it with its node)", si.Node, si.Slot))
		}
	}
	if len(by) == 0 {
		return nil
	}
	return &InputError{Attribute: "lun", Value: s.LUN,
		Detail: fmt.Sprintf("LUN %q (%s) holds a Kayo FS volume that is mounted elsewhere, by %s; formatting it would "+
			"pull it from under them. Unmount it everywhere first (destroy the volume that uses it)", s.LUN, fd.Path(), strings.Join(by, ", "))}
}

// UpdateVolume changes a volume in place: label, drive letter, a larger
// size (the LUN image grows, then the file system online) and more node
// slots. Disk changes come first and are idempotent, so a crash before the
// record commits is repaired by running the update again. Mounts are then
// brought in line with the cluster's nodes.
func (e *Engine) UpdateVolume(ctx context.Context, id string, s VolumeSpec) (Volume, error) {
	if err := CheckVolumeSpec(s); err != nil {
		return Volume{}, err
	}
	v, err := e.GetVolume(ctx, id)
	if err != nil {
		return Volume{}, err
	}
	if err := CheckVolumeChange(v.VolumeSpec, s); err != nil {
		return Volume{}, err
	}
	c, err := e.GetCluster(ctx, v.Cluster)
	if err != nil {
		return Volume{}, err
	}
	if s.NodeSlots < len(c.Nodes) {
		return Volume{}, slotsError(s.NodeSlots, c)
	}
	if err := e.RequireQuorum(ctx, v.Cluster, "changing volume "+v.DriveLetter+":"); err != nil {
		return Volume{}, err
	}
	if s.DriveLetter != v.DriveLetter {
		if other, err := e.volumeByLetter(ctx, s.Cluster, s.DriveLetter); err == nil {
			return Volume{}, letterTaken(s, other)
		} else if !errors.Is(err, ErrNotFound) {
			return Volume{}, err
		}
	}
	if s.SizeGiB != v.SizeGiB || s.NodeSlots != v.NodeSlots || s.Label != v.Label {
		if err := e.changeOnDisk(ctx, v, s); err != nil {
			return Volume{}, err
		}
	}
	next := v
	next.VolumeSpec = s
	cmps := []store.Cmp{store.At(volumeKey(v.ID), v.Revision)}
	ops := []store.Op{putJSON(volumeKey(v.ID), next)}
	if s.DriveLetter != v.DriveLetter {
		cmps = append(cmps, store.Absent(volumeLetterKey(s.Cluster, s.DriveLetter)))
		ops = append(ops, store.Del(volumeLetterKey(v.Cluster, v.DriveLetter)),
			store.Put(volumeLetterKey(s.Cluster, s.DriveLetter), []byte(v.ID)))
	}
	ops = append(ops, e.eventOp(Event{Kind: EventVolumeUpdated, Cluster: v.Cluster, Subject: v.ID,
		Detail: changes(v.VolumeSpec, s)}))
	rev, err := e.st.Commit(ctx, cmps, ops)
	if isConflict(err) {
		return Volume{}, fmt.Errorf("volume %s: changed concurrently (or drive letter %s: was just taken); apply again: %w", v.DriveLetter, s.DriveLetter, ErrConflict)
	}
	if err != nil {
		return Volume{}, err
	}
	next.Revision = rev
	return e.syncVolumeMounts(ctx, next, c.Nodes)
}

func changes(a, b VolumeSpec) map[string]string {
	d := map[string]string{}
	if a.Label != b.Label {
		d["label"] = a.Label + " -> " + b.Label
	}
	if a.DriveLetter != b.DriveLetter {
		d["drive_letter"] = a.DriveLetter + " -> " + b.DriveLetter
	}
	if a.SizeGiB != b.SizeGiB {
		d["size_gib"] = fmt.Sprintf("%d -> %d", a.SizeGiB, b.SizeGiB)
	}
	if a.NodeSlots != b.NodeSlots {
		d["node_slots"] = fmt.Sprintf("%d -> %d", a.NodeSlots, b.NodeSlots)
	}
	if a.ForceDestroy != b.ForceDestroy {
		d["force_destroy"] = fmt.Sprint(b.ForceDestroy)
	}
	return d
}

// changeOnDisk has one of the volume's nodes (the first by name whose
// agent is up; nodework.go) grow the LUN image and the file system, add
// slots and relabel (changeOnDiskHere). A volume mounted nowhere is
// changed by this process.
func (e *Engine) changeOnDisk(ctx context.Context, v Volume, s VolumeSpec) error {
	nodes := sortedKeys(v.Mounts)
	if len(nodes) == 0 {
		return e.changeOnDiskHere(ctx, v, s, "")
	}
	node, err := e.workNode(ctx, nodes)
	if err != nil {
		return fmt.Errorf("volume %s: changing it on disk: %w", v.DriveLetter, err)
	}
	args, err := json.Marshal(volumeChangeArgs{Volume: v.ID, Spec: s})
	if err != nil {
		return err
	}
	_, err = e.nodeWork(ctx, node, WorkRequest{Op: workVolumeChange, Object: volumeWorkObject(v.ID), Args: args})
	return err
}

// changeOnDiskHere (run by a node's executor, or by the control plane for
// a volume mounted nowhere) grows the LUN image and the file system, adds
// slots and relabels, mounted as node (as the first of its nodes when
// ""). Each step is idempotent.
func (e *Engine) changeOnDiskHere(ctx context.Context, v Volume, s VolumeSpec, node string) error {
	size := s.SizeGiB << 30
	fd, err := e.openVolumeDevice(v) // checks the LUN holds v before it grows
	if err != nil {
		return err
	}
	devSize := fd.Size()
	fd.Close()
	if v.Embedded() && devSize < size {
		if err := os.Truncate(v.Device, size); err != nil {
			return fmt.Errorf("volume %s: growing LUN image %s to %d GiB: %w", v.DriveLetter, v.Device, s.SizeGiB, pathCause(err))
		}
		devSize = size
	}
	if devSize < size {
		return &InputError{Attribute: "size_gib", Value: fmt.Sprint(s.SizeGiB),
			Detail: fmt.Sprintf("%d GiB is larger than LUN %q (%d bytes); grow the device first", s.SizeGiB, s.LUN, devSize)}
	}
	change := func(fv *kayofs.Volume) error {
		if err := fv.Grow(size); err != nil {
			return fmt.Errorf("volume %s: growing to %d GiB: %w", v.DriveLetter, s.SizeGiB, err)
		}
		if err := fv.SetSlots(s.NodeSlots); err != nil {
			return fmt.Errorf("volume %s: node slots: %w", v.DriveLetter, err)
		}
		if err := fv.SetLabel(s.Label); err != nil {
			return fmt.Errorf("volume %s: label: %w", v.DriveLetter, err)
		}
		return nil
	}
	if _, ok := v.Mounts[node]; ok {
		return e.WithVolume(ctx, v.ID, node, change)
	}
	if nodes := sortedKeys(v.Mounts); len(nodes) > 0 {
		return e.WithVolume(ctx, v.ID, nodes[0], change)
	}
	// mounted nowhere: a transient mount of the engine's own
	fd, o, err := e.OpenVolumeMount(v)
	if err != nil {
		return err
	}
	defer fd.Close()
	fv, err := kayofs.Mount(fd, "kayo-engine", o)
	if err != nil {
		return fmt.Errorf("volume %s: %w", v.DriveLetter, err)
	}
	err = change(fv)
	if uerr := fv.Unmount(); err == nil {
		err = uerr
	}
	return err
}

// syncVolumeMounts mounts v on every node of nodes that lacks it and
// unmounts it from nodes no longer listed, then records the mounts. A node
// that finds no free slot (the cluster outgrew node_slots) is left
// unmounted until node_slots is raised.
func (e *Engine) syncVolumeMounts(ctx context.Context, v Volume, nodes []string) (Volume, error) {
	var add, remove []string
	for _, n := range nodes {
		if _, ok := v.Mounts[n]; !ok {
			add = append(add, n)
		}
	}
	for _, n := range sortedKeys(v.Mounts) {
		if !slices.Contains(nodes, n) {
			remove = append(remove, n)
		}
	}
	if len(add) == 0 && len(remove) == 0 {
		return v, nil
	}
	e.releaseVolumeMounts(v.ID) // this process's cached mounts (volume_mounts.go)
	if err := e.releaseAgentMounts(ctx, v.ID, remove, releaseHoldDelete); err != nil {
		return v, fmt.Errorf("volume %s: %w", v.DriveLetter, err)
	}
	out, err := e.volumeSlots(ctx, v, volumeSlotsArgs{Volume: v.ID, Add: add, Remove: remove})
	if err != nil {
		return v, err
	}
	mounts := map[string]int{}
	for n, s := range v.Mounts {
		mounts[n] = s
	}
	var evs []store.Op
	for _, n := range remove {
		evs = append(evs, e.eventOp(Event{Kind: EventVolumeUnmounted, Cluster: v.Cluster, Subject: v.ID,
			Detail: map[string]string{"node": n, "slot": fmt.Sprint(mounts[n])}}))
		delete(mounts, n)
	}
	for _, n := range add {
		slot, ok := out.Slots[n]
		if !ok {
			continue // no free slot: deferred until node_slots grows
		}
		mounts[n] = slot
		evs = append(evs, e.eventOp(Event{Kind: EventVolumeMounted, Cluster: v.Cluster, Subject: v.ID,
			Detail: map[string]string{"node": n, "slot": fmt.Sprint(slot)}}))
	}
	next := v
	next.Mounts = mounts
	// The nodes that left stop reporting; those that came report.
	evs = append(evs, nodeReportDels(v.ID, remove)...)
	evs = append(evs, reportOps(out.Reports...)...)
	rev, err := e.st.Commit(ctx, []store.Cmp{store.At(volumeKey(v.ID), v.Revision)},
		append([]store.Op{putJSON(volumeKey(v.ID), next)}, evs...))
	if err != nil {
		return v, fmt.Errorf("volume %s: recording mounts: %w", v.DriveLetter, err)
	}
	next.Revision = rev
	return next, nil
}

// SyncClusterVolumes makes every volume of cluster mounted on exactly its
// nodes (UpdateCluster calls it after a membership change).
func (e *Engine) SyncClusterVolumes(ctx context.Context, cluster string) error {
	c, err := e.GetCluster(ctx, cluster)
	if err != nil {
		return err
	}
	vs, err := e.ListVolumes(ctx, cluster)
	if err != nil {
		return err
	}
	var errs []error
	for _, v := range vs {
		if _, err := e.syncVolumeMounts(ctx, v, c.Nodes); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// VolumeUnmountedNodes lists the nodes of a volume's cluster that do not
// mount it (the cluster outgrew node_slots, or a membership change whose
// mount step failed; the next UpdateVolume mounts them).
func (e *Engine) VolumeUnmountedNodes(ctx context.Context, id string) ([]string, Volume, error) {
	v, err := e.GetVolume(ctx, id)
	if err != nil {
		return nil, v, err
	}
	c, err := e.GetCluster(ctx, v.Cluster)
	if err != nil {
		return nil, v, err
	}
	var out []string
	for _, n := range c.Nodes {
		if _, ok := v.Mounts[n]; !ok {
			out = append(out, n)
		}
	}
	return out, v, nil
}
