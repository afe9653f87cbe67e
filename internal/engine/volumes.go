package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/lunprobe"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// Volume events.
const (
	EventVolumeCreated   = "volume.created"
	EventVolumeDestroyed = "volume.destroyed"
	EventVolumeMounted   = "volume.mounted"
	EventVolumeUnmounted = "volume.unmounted"
)

// Volume limits.
const (
	MinVolumeGiB     = 1
	MaxVolumeGiB     = 64 << 10 // 64 TiB
	DefaultBlockSize = 4096
	DefaultNodeSlots = 16
)

// VolumeSpec is what a kayo_shared_volume declares.
type VolumeSpec struct {
	Cluster string `json:"cluster"`
	// LUN is an embedded SAN LUN name, or an absolute block-device path;
	// "" when DeviceID or DevicePaths name the LUN (volumes_resolve.go).
	LUN          string `json:"lun"`
	SizeGiB      int64  `json:"size_gib"`
	Label        string `json:"label"`
	DriveLetter  string `json:"drive_letter"`
	BlockSize    int    `json:"block_size"`
	NodeSlots    int    `json:"node_slots"`
	ForceFormat  bool   `json:"force_format"`
	ForceDestroy bool   `json:"force_destroy"`
	// ForceFormatOver names the recognised signatures (lunprobe names,
	// comma-separated) a format may destroy; force_format does not.
	ForceFormatOver string `json:"force_format_over,omitempty"`
	// FileBacked allows a lun path that is a regular file.
	FileBacked bool `json:"file_backed,omitempty"`

	// DeviceID is the LUN's /dev/disk/by-id name, resolved by each node.
	DeviceID string `json:"device_id,omitempty"`
	// DevicePaths is the LUN's path on each node.
	DevicePaths map[string]string `json:"device_paths,omitempty"`
}

// Volume is a formatted, mounted shared volume as the database holds it.
type Volume struct {
	VolumeSpec
	// ID is the Kayo FS volume UUID.
	ID string `json:"id"`
	// Device is the absolute path of the LUN image or block device, set
	// when the record is read (resolveDevice). An embedded LUN's is not
	// stored (MarshalJSON): it is found by name in the data dir in use.
	Device string `json:"device,omitempty"`
	// Mounts maps each node that mounts the volume to its slot.
	Mounts    map[string]int `json:"mounts"`
	CreatedAt time.Time      `json:"created_at"`
	Revision  int64          `json:"-"`
}

// MarshalJSON stores an embedded LUN by its name only, so a copied or
// moved data_dir never reaches the original's image through the record.
func (v Volume) MarshalJSON() ([]byte, error) {
	type plain Volume
	p := plain(v)
	if v.Embedded() || v.DeviceID != "" || v.DevicePaths != nil {
		p.Device = "" // each node resolves it (ResolveLUN)
	}
	return json.Marshal(p)
}

// Embedded reports whether the LUN lives in the embedded SAN.
func (s VolumeSpec) Embedded() bool { return s.LUN != "" && !filepath.IsAbs(s.LUN) }

// CheckVolumeSpec checks what is known without the database.
func CheckVolumeSpec(s VolumeSpec) error {
	if err := checkLUNNaming(s); err != nil {
		return err
	}
	if s.Embedded() {
		if err := checkLUNName(s.LUN); err != nil {
			return err
		}
	}
	if s.SizeGiB < MinVolumeGiB || s.SizeGiB > MaxVolumeGiB {
		return invalid("size_gib", fmt.Sprint(s.SizeGiB), fmt.Sprintf("%d to %d (64 TiB)", MinVolumeGiB, MaxVolumeGiB))
	}
	if err := CheckDriveLetter(s.DriveLetter); err != nil {
		return err
	}
	if bs := s.BlockSize; bs < 4096 || bs > 65536 || bs&(bs-1) != 0 {
		return invalid("block_size", fmt.Sprint(bs), "a power of two from 4096 to 65536")
	}
	if s.NodeSlots < 1 || s.NodeSlots > kayofs.MaxSlots {
		return invalid("node_slots", fmt.Sprint(s.NodeSlots), fmt.Sprintf("1 to %d, and at least the cluster's node count", kayofs.MaxSlots))
	}
	if err := CheckLabel(s.Label); err != nil {
		return err
	}
	return checkFormatOver(s.ForceFormatOver)
}

// CheckLabel allows at most kayofs.MaxLabelLen bytes of printable UTF-8.
func CheckLabel(l string) error {
	for i, r := range l {
		if r == utf8.RuneError {
			return &InputError{Attribute: "label", Value: l,
				Detail: fmt.Sprintf("%q is not valid UTF-8 (at byte %d); allowed: at most %d bytes of printable UTF-8", l, i, kayofs.MaxLabelLen)}
		}
		if unicode.IsControl(r) {
			what := "a control character"
			if r == 0 {
				what = "a NUL byte"
			}
			return &InputError{Attribute: "label", Value: l,
				Detail: fmt.Sprintf("%q contains %s (%U at byte %d); allowed: at most %d bytes of printable UTF-8", l, what, r, i, kayofs.MaxLabelLen)}
		}
	}
	if len(l) > kayofs.MaxLabelLen {
		return invalid("label", l, fmt.Sprintf("at most %d bytes", kayofs.MaxLabelLen))
	}
	return nil
}

// CheckDriveLetter allows one letter D to Z (A-C are the floppy and system
// drives on a Windows host).
func CheckDriveLetter(l string) error {
	if len(l) != 1 || l[0] < 'D' || l[0] > 'Z' {
		return invalid("drive_letter", l, "one upper-case letter from D to Z")
	}
	return nil
}

func checkLUNName(name string) error {
	const allowed = "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit; or an absolute device path"
	if len(name) < 1 || len(name) > 64 {
		return invalid("lun", name, allowed)
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || i > 0 && strings.ContainsRune("._-", r)
		if !ok {
			return invalid("lun", name, allowed)
		}
	}
	return nil
}

// devicePath is where the LUN of s lives.
func (e *Engine) devicePath(s VolumeSpec) (string, error) { return e.localLUN(s) }

// volumeIntent is written before any side effect of a creation; the
// executor that formats records its progress in it (volume_format.go).
type volumeIntent struct {
	Spec VolumeSpec `json:"spec"`
	// Device is what older versions recorded: a block device's path. The
	// executor resolves the LUN from Spec on its own node.
	Device string `json:"device,omitempty"`
	// Created is true when the intent's run created the LUN image.
	Created bool `json:"created"`
	// Found is what the LUN carried before ("" nothing: see judgeLUN).
	Found string `json:"found"`
	// Writing is committed before the first write to the LUN: an intent
	// without it wrote nothing (but perhaps a new, empty image) and is
	// dropped when it fails or another LUN is asked for.
	Writing bool `json:"writing,omitempty"`
	// Formatted is committed once the format completed: until then every
	// run formats from scratch (a half-formatted LUN is never accepted).
	Formatted bool      `json:"formatted,omitempty"`
	StartedAt time.Time `json:"started_at"`
}

// CreateVolume formats the LUN with Kayo FS (creating an embedded SAN
// LUN's image) and mounts it on every node of the cluster. The control
// plane checks what the database knows and records the intent; one node's
// executor, chosen by formatNode, judges the LUN, formats it and claims
// the slots (volume_format.go): this process opens no device unless it
// is that executor (the embedded database's in-process one). A creation
// that crashed midway is resumed by the next call with the same cluster
// and drive letter.
func (e *Engine) CreateVolume(ctx context.Context, s VolumeSpec) (Volume, error) {
	if err := CheckVolumeSpec(s); err != nil {
		return Volume{}, err
	}
	c, err := e.GetCluster(ctx, s.Cluster)
	if err != nil {
		return Volume{}, err
	}
	if s.NodeSlots < len(c.Nodes) {
		return Volume{}, invalid("node_slots", fmt.Sprint(s.NodeSlots),
			fmt.Sprintf("at least the %d nodes of cluster %q (at most %d)", len(c.Nodes), c.Name, kayofs.MaxSlots))
	}
	if err := e.RequireQuorum(ctx, s.Cluster, "creating volume "+s.DriveLetter+":"); err != nil {
		return Volume{}, err
	}
	if err := e.checkLUNForCluster(ctx, s, c); err != nil {
		return Volume{}, err
	}
	if _, err := e.volumeIntent(ctx, s); err != nil {
		return Volume{}, err
	}
	nodes := slices.Sorted(slices.Values(c.Nodes))
	node, err := e.formatNode(ctx, s, nodes)
	if err == nil {
		var out volumeFormatOutcome
		out, err = e.formatVolume(ctx, node, s, nodes)
		if err == nil {
			return e.commitVolume(ctx, s, node, out)
		}
	}
	e.dropIntent(context.WithoutCancel(ctx), s)
	return Volume{}, fmt.Errorf("creating volume %s: %w", s.DriveLetter, err)
}

// volumeIntent records (or resumes) the intent to create s. What the
// database can tell comes first (drive letter, witness, a LUN another
// volume holds), so a refused creation leaves no intent behind; what the
// LUN holds is judged by the executor that formats it.
func (e *Engine) volumeIntent(ctx context.Context, s VolumeSpec) (volumeIntent, error) {
	key := volumeIntentKey(s.Cluster, s.DriveLetter)
	var in volumeIntent
	cmp := store.Absent(key)
	rev, err := getJSON(ctx, e.st, key, &in)
	switch {
	case err == nil && sameLUN(in.Spec, s):
		in.Spec = s // a resumed creation takes the current options
		_, err := e.st.Commit(ctx, []store.Cmp{store.At(key, rev)}, []store.Op{putJSON(key, in)})
		if isConflict(err) {
			return in, fmt.Errorf("volume %s: of cluster %q is being created by another process: %w", s.DriveLetter, s.Cluster, ErrConflict)
		}
		return in, err
	case err == nil && in.Writing:
		return in, fmt.Errorf("creating volume %s: on cluster %q: an interrupted creation had begun formatting LUN %q; "+
			"apply it again with lun = %q to finish it (changing lun afterwards replaces it): %w",
			s.DriveLetter, s.Cluster, in.Spec.LUN, in.Spec.LUN, ErrConflict)
	case err == nil:
		// It wrote nothing: this one replaces it (and its empty image goes).
		cmp = store.At(key, rev)
	case !errors.Is(err, store.ErrNotFound):
		return in, err
	}
	stale := in
	if other, err := e.volumeByLetter(ctx, s.Cluster, s.DriveLetter); err == nil {
		return in, letterTaken(s, other)
	} else if !errors.Is(err, ErrNotFound) {
		return in, err
	}
	if owner, err := e.WitnessOf(ctx, s.LUN); err != nil {
		return in, err
	} else if owner != "" {
		return in, &InputError{Attribute: "lun", Value: s.LUN,
			Detail: fmt.Sprintf("%q is the quorum witness disk of cluster %q; a data volume needs a LUN of its own", s.LUN, owner)}
	}
	if vs, err := e.ListVolumes(ctx, ""); err != nil {
		return in, err
	} else {
		for _, v := range vs {
			if sameLUN(v.VolumeSpec, s) {
				attr, val, ref := lunRef(s, v.Device)
				return in, &InputError{Attribute: attr, Value: val,
					Detail: fmt.Sprintf("LUN %s is volume %s (%s) of cluster %q; a LUN holds one volume", ref, v.DriveLetter, v.ID, v.Cluster)}
			}
		}
	}
	in = volumeIntent{Spec: s, StartedAt: e.now().UTC()}
	_, err = e.st.Commit(ctx, []store.Cmp{cmp, store.Absent(volumeLetterKey(s.Cluster, s.DriveLetter))},
		[]store.Op{putJSON(key, in)})
	if isConflict(err) {
		return in, fmt.Errorf("volume %s: of cluster %q is being created by another process: %w", s.DriveLetter, s.Cluster, ErrConflict)
	}
	if err == nil && cmp.ModRevision != 0 && !e.remoteDB {
		// The embedded database's LUN images are this machine's; on etcd
		// an empty image a dropped intent made stays on its node.
		e.removeCreatedImage(stale)
	}
	return in, err
}

// sameLUN reports whether a and b name the same LUN: the same embedded
// SAN LUN or device_id, or a path in common.
func sameLUN(a, b VolumeSpec) bool {
	switch {
	case a.Embedded() || b.Embedded():
		return a.Embedded() && b.Embedded() && a.LUN == b.LUN
	case a.DeviceID != "" || b.DeviceID != "":
		return a.DeviceID == b.DeviceID
	}
	paths := func(s VolumeSpec) []string {
		if s.LUN != "" {
			return []string{s.LUN}
		}
		return slices.Collect(maps.Values(s.DevicePaths))
	}
	for _, p := range paths(a) {
		if slices.Contains(paths(b), p) {
			return true
		}
	}
	return false
}

// judgeExisting opens the existing LUN dev (O_EXCL for a block device)
// and checks its size, what it holds (judgeLUN) and that no node mounts a
// Kayo FS on it (force_format does not override that).
func (e *Engine) judgeExisting(s VolumeSpec, dev string) (string, error) {
	e.countDeviceOpen()
	fd, err := kayofs.OpenDeviceExclusive(dev)
	if errors.Is(err, syscall.EBUSY) {
		return "", &InputError{Attribute: "lun", Value: s.LUN, Detail: fmt.Sprintf("%q is busy: something holds it exclusively "+
			"(a mounted file system, device mapper, LVM, MD RAID or another program); it is not formatted while in use", s.LUN)}
	}
	if err != nil {
		return "", &InputError{Attribute: "lun", Value: s.LUN, Detail: fmt.Sprintf("%q: %v", s.LUN, pathCause(err))}
	}
	defer fd.Close()
	// What it holds first: that matters more than its size.
	found, err := judgeLUN(fd, s)
	if err != nil {
		return found, err
	}
	if err := checkLUNSize(s, dev, fd.Size()); err != nil {
		return found, err
	}
	if found == "kayofs" {
		return found, mountedElsewhere(fd, s)
	}
	return found, nil
}

// removeCreatedImage removes the image a dropped intent created, if it is
// still empty (nothing was written to it).
func (e *Engine) removeCreatedImage(in volumeIntent) {
	if !in.Created || !in.Spec.Embedded() || e.dataDir == "" {
		return
	}
	path := e.LUNPath(in.Spec.LUN)
	e.countDeviceOpen()
	fd, err := kayofs.OpenDevice(path)
	if err != nil {
		return
	}
	ends, err := lunprobe.Read(fd, fd.Size())
	_ = fd.Close()
	if err == nil && ends.FirstNonZero() < 0 {
		_ = os.Remove(path)
	}
}

// dropIntent removes the intent of s after its creation failed, unless
// its executor began writing (then the next apply resumes it), so the
// drive letter and LUN are free again. The executor removed any image it
// created.
func (e *Engine) dropIntent(ctx context.Context, s VolumeSpec) {
	key := volumeIntentKey(s.Cluster, s.DriveLetter)
	var in volumeIntent
	rev, err := getJSON(ctx, e.st, key, &in)
	if err != nil || in.Writing {
		return
	}
	_, _ = e.st.Commit(ctx, []store.Cmp{store.At(key, rev)}, []store.Op{store.Del(key)})
}

// commitVolume records the volume an executor formatted and mounted: the
// record with its mounts, its drive letter, events, each node's first
// report, and the intent's and node's format result's deletion, in one
// commit.
func (e *Engine) commitVolume(ctx context.Context, s VolumeSpec, node string, out volumeFormatOutcome) (Volume, error) {
	v := Volume{VolumeSpec: s, ID: out.ID, Mounts: out.Mounts, CreatedAt: e.now().UTC()}
	ops := []store.Op{putJSON(volumeKey(v.ID), v), store.Put(volumeLetterKey(s.Cluster, s.DriveLetter), []byte(v.ID)),
		store.Del(volumeIntentKey(s.Cluster, s.DriveLetter)),
		store.Del(nodeWorkResKey(node, volumeNewWorkObject(s.Cluster, s.DriveLetter))), // read: done with
		e.eventOp(Event{Kind: EventVolumeCreated, Cluster: s.Cluster, Subject: v.ID,
			Detail: map[string]string{"drive_letter": s.DriveLetter, "lun": s.LUN, "label": s.Label}})}
	for _, n := range sortedKeys(v.Mounts) {
		ops = append(ops, e.eventOp(Event{Kind: EventVolumeMounted, Cluster: s.Cluster, Subject: v.ID,
			Detail: map[string]string{"node": n, "slot": fmt.Sprint(v.Mounts[n])}}))
	}
	ops = append(ops, reportOps(out.Reports...)...)
	rev, err := e.st.Commit(ctx, []store.Cmp{store.Absent(volumeKey(v.ID)), store.Absent(volumeLetterKey(s.Cluster, s.DriveLetter))}, ops)
	if err != nil {
		return Volume{}, err
	}
	v.Revision = rev
	e.resolveDevice(&v)
	return v, nil
}

// mountNode claims node's slot (its own if it has one) and detaches,
// leaving the claim on disk: the mount outlives this process.
func mountNode(dev kayofs.Device, node string, o kayofs.MountOptions) (int, error) {
	fv, err := kayofs.Mount(dev, node, o)
	if err != nil {
		return 0, err
	}
	slot := fv.Slot()
	if err := detach(fv); err != nil {
		return 0, err
	}
	return slot, nil
}

// detach releases this process's hold on a mount and keeps the node's
// slot claimed. Until kayofs has Detach, dropping the mount as a dead node
// does the same in the lab: the slot stays the node's, its journal is
// clean, and the node's next Mount reclaims it.
func detach(fv *kayofs.Volume) error {
	if d, ok := any(fv).(interface{ Detach() error }); ok {
		return d.Detach()
	}
	fv.Crash()
	return nil
}

// GetVolume returns a volume by UUID.
func (e *Engine) GetVolume(ctx context.Context, id string) (Volume, error) {
	kv, err := e.st.Get(ctx, volumeKey(id))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Volume{}, err
	}
	v, err := e.volumeRecord(id, kv)
	e.resolveDevice(&v)
	return v, err
}

// volumeRecord decodes the record of volume id read as kv (missing: an
// error wrapping ErrNotFound), or copies the one decoded last from the
// same bytes: every read of a VM reads its volume for the drive letter,
// and the record (its mounts) changes far less often.
func (e *Engine) volumeRecord(id string, kv store.KV) (Volume, error) {
	if !kv.Exists() {
		return Volume{}, fmt.Errorf("volume %q does not exist: %w", id, ErrNotFound)
	}
	v, err := memo(&e.volumeRecs, kv.Key, kv.Value, func() (Volume, error) {
		var v Volume
		return v, decode(kv, &v)
	})
	if err != nil {
		return Volume{}, err
	}
	v.Mounts, v.DevicePaths = maps.Clone(v.Mounts), maps.Clone(v.DevicePaths)
	v.Revision = kv.ModRevision
	return v, nil
}

// volumeByLetter returns the volume of cluster at letter.
func (e *Engine) volumeByLetter(ctx context.Context, cluster, letter string) (Volume, error) {
	kv, err := e.st.Get(ctx, volumeLetterKey(cluster, letter))
	if errors.Is(err, ErrNotFound) {
		return Volume{}, fmt.Errorf("cluster %q has no volume %s: %w", cluster, letter, ErrNotFound)
	}
	if err != nil {
		return Volume{}, err
	}
	return e.GetVolume(ctx, string(kv.Value))
}

// LookupVolume finds a volume by UUID or by "cluster/letter" (import IDs).
func (e *Engine) LookupVolume(ctx context.Context, ref string) (Volume, error) {
	if cluster, letter, ok := strings.Cut(ref, "/"); ok {
		return e.volumeByLetter(ctx, cluster, strings.TrimSuffix(strings.ToUpper(letter), ":"))
	}
	return e.GetVolume(ctx, ref)
}

// ListVolumes returns every volume (of cluster, unless "").
func (e *Engine) ListVolumes(ctx context.Context, cluster string) ([]Volume, error) {
	vs, revs, err := listJSON[Volume](ctx, e.st, volumesPrefix)
	if err != nil {
		return nil, err
	}
	out := vs[:0]
	for i, v := range vs {
		if cluster == "" || v.Cluster == cluster {
			v.Revision = revs[i]
			e.resolveDevice(&v)
			out = append(out, v)
		}
	}
	return out, nil
}

// WithVolume runs fn on the volume as mounted by node: it takes node's
// slot (replaying any journal a crash left), runs fn, and detaches once
// idle, so the node's mount stays claimed for the next process. A node
// agent that holds the mount (internal/nodeagent/workexec/mounts.go) lends it first, unless
// this is that node's executor's work, which shares the agent's mount. After fn
// succeeds, node's report records the volume's space as the mount sees
// it (volume_reports.go).
func (e *Engine) WithVolume(ctx context.Context, volumeID, node string, fn func(*kayofs.Volume) error) error {
	v, err := e.GetVolume(ctx, volumeID)
	if err != nil {
		return err
	}
	if _, ok := v.Mounts[node]; !ok {
		return fmt.Errorf("volume %s: (%s) is not mounted on %q (mounted on %s)",
			v.DriveLetter, v.ID, node, strings.Join(sortedKeys(v.Mounts), ", "))
	}
	// Outside the node's executor, its agent may hold the node's mount
	// for its life (internal/nodeagent/workexec/mounts.go): it lends it.
	if err := e.lendMount(ctx, v.ID, node); err != nil {
		return err
	}
	var rep VolumeReport
	var rerr error
	err = e.withMount(ctx, v, node, func(fv *kayofs.Volume) error { // volume_mounts.go: a cached mount
		if err := fn(fv); err != nil {
			return err
		}
		rep, rerr = e.reportFromMount(v, fv)
		return nil
	})
	if err != nil {
		// A mount held a while (an agent's, a cached one) fails like this
		// when the LUN was zeroed or swapped under it: say so, as a fresh
		// mount's identity check would (volumes_lun.go).
		if fd, oerr := e.openVolumeDevice(v); oerr != nil {
			var lost *LUNLostError
			if errors.As(oerr, &lost) {
				return oerr
			}
		} else {
			_ = fd.Close()
		}
		return err
	}
	if rerr != nil {
		// A report that cannot be made does not undo fn's change: the
		// node's next change or its agent's heartbeat reports again.
		return err
	}
	// Written even when the caller gave up meanwhile: fn's change is made.
	_ = e.putReport(context.WithoutCancel(ctx), rep, v.Revision)
	return nil
}

// DeleteVolume unmounts a volume from every node and removes it (and its
// embedded LUN image). While files exist it refuses unless the volume was
// created with force_destroy, or force says so. A volume whose LUN no
// longer holds it (zeroed, deleted or swapped outside Kayo) is only
// forgotten: its LUN is left as found, and a note and the event say so.
func (e *Engine) DeleteVolume(ctx context.Context, id string, force bool) error {
	v, err := e.GetVolume(ctx, id)
	if err != nil {
		return err
	}
	force = force || v.ForceDestroy
	e.releaseVolumeMounts(v.ID) // this process's cached mounts (volume_mounts.go)
	// The nodes' agents let go of their mounts (internal/nodeagent/workexec/mounts.go) and stay
	// off the volume while it goes.
	if err := e.releaseAgentMounts(ctx, v.ID, sortedKeys(v.Mounts), releaseHoldDelete); err != nil {
		return fmt.Errorf("volume %s: %w", v.DriveLetter, err)
	}
	// One node's executor frees every slot (volume_slots.go), refusing
	// while the volume holds entries unless forced.
	nodes := sortedKeys(v.Mounts)
	if len(nodes) > 0 {
		_, err := e.volumeSlots(ctx, v, volumeSlotsArgs{Volume: v.ID, Remove: nodes, Empty: !force})
		var lost *LUNLostError
		if errors.As(err, &lost) {
			return e.forgetVolume(ctx, v, lost)
		}
		if err != nil {
			return err
		}
	}
	ops := []store.Op{store.Del(volumeKey(v.ID)), store.Del(volumeLetterKey(v.Cluster, v.DriveLetter)),
		e.eventOp(Event{Kind: EventVolumeDestroyed, Cluster: v.Cluster, Subject: v.ID,
			Detail: map[string]string{"drive_letter": v.DriveLetter, "lun": v.LUN}})}
	dels, err := e.deleteReportOps(ctx, v.ID)
	if err != nil {
		return err
	}
	if _, err := e.st.Commit(ctx, []store.Cmp{store.At(volumeKey(v.ID), v.Revision)}, append(ops, dels...)); err != nil {
		return err
	}
	return e.removeLUNImage(ctx, v, nodes)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func first(xs []string, n int) []string {
	if len(xs) > n {
		return append(xs[:n:n], "…")
	}
	return xs
}
