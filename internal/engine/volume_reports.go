package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// Volume reports. Whoever holds a node's mount of a volume (the process
// that formats, grows or writes VM files through it, and the node's agent
// on its heartbeat) records what that node sees of the LUN under
// volume-reports/<volume>/<node>. Reads (plan, refresh, data sources,
// kayoctl listings) take a volume's used and free bytes and whether its
// LUN still holds it from these reports alone: the control plane opens no
// device, so a plan works from a machine that reaches only the database.

// VolumeReportInterval is how often a node agent reports its volumes.
const VolumeReportInterval = 10 * time.Second

// VolumeReportStale is the age past which reads say a report may be out
// of date (no agent has reported since).
const VolumeReportStale = 2 * time.Minute

// VolumeReport is what one node saw of a volume's LUN.
type VolumeReport struct {
	Volume string `json:"volume"`
	Node   string `json:"node"`
	// By names the reporting process (an agent, or a process acting for
	// the lab's nodes).
	By string `json:"by"`
	// Device is the path the node reached the LUN at; LUNBytes its size
	// (0 when reported from a mount).
	Device   string `json:"device,omitempty"`
	LUNBytes int64  `json:"lun_bytes,omitempty"`
	// FSUUID and FSLabel are the Kayo FS found on the LUN.
	FSUUID  string `json:"fs_uuid,omitempty"`
	FSLabel string `json:"fs_label,omitempty"`
	// Space, from the allocation groups.
	TotalBytes int64 `json:"total_bytes"`
	UsedBytes  int64 `json:"used_bytes"`
	FreeBytes  int64 `json:"free_bytes"`
	// SpaceAt is when the space was taken, when before ReportedAt (a
	// change reported within spaceEvery of the last computation).
	SpaceAt time.Time `json:"space_at,omitzero"`
	// Slot and SlotState are the node's mount: "mounted", "detached",
	// "dead" (mounted, its holder gone), "free" (not mounted).
	Slot      int    `json:"slot"`
	SlotState string `json:"slot_state,omitempty"`
	// Lost says why the LUN no longer holds the volume (zeroed, another
	// volume's UUID — then Holds — or damaged), as this node saw it.
	Lost  string `json:"lost,omitempty"`
	Holds string `json:"holds,omitempty"`
	// Unseen says why this node could not reach the LUN at all: its own
	// problem (a path or a SAN zone), not the LUN's.
	Unseen     string    `json:"unseen,omitempty"`
	ReportedAt time.Time `json:"reported_at"`
}

func (r VolumeReport) healthy() bool { return r.Lost == "" && r.Unseen == "" }

// VolumeState is a volume as the reports show it.
type VolumeState struct {
	// UsedBytes, FreeBytes and TotalBytes come from the newest healthy
	// report (zero when none).
	UsedBytes, FreeBytes, TotalBytes int64
	// ReportedAt and By are that report's time and node ("" none).
	ReportedAt time.Time
	By         string
	// Stale lists the nodes that mount the volume without a report newer
	// than VolumeReportStale; Unseen the nodes that could not reach the
	// LUN at their last report, with why.
	Stale  []string
	Unseen map[string]string
	// Lost is set when the newest report that judged the LUN says it no
	// longer holds the volume.
	Lost *LUNLostError
	// Reports are every node's report, by node.
	Reports []VolumeReport
}

// VolumeReports returns every node's report of volume id, by node.
func (e *Engine) VolumeReports(ctx context.Context, id string) ([]VolumeReport, error) {
	kvs, _, err := e.st.List(ctx, volumeReportsPrefix+id+"/")
	if err != nil {
		return nil, err
	}
	// A plan reads them once per VM: decode each record once per change.
	reps := make([]VolumeReport, 0, len(kvs))
	for _, kv := range kvs {
		r, err := memo(&e.reportRecs, kv.Key, kv.Value, func() (VolumeReport, error) {
			var r VolumeReport
			return r, decode(kv, &r)
		})
		if err != nil {
			return nil, err
		}
		reps = append(reps, r)
	}
	slices.SortFunc(reps, func(a, b VolumeReport) int { return strings.Compare(a.Node, b.Node) })
	return reps, nil
}

// VolumeState reads v's reports (database only: no device is opened).
func (e *Engine) VolumeState(ctx context.Context, v Volume) (VolumeState, error) {
	reps, err := e.VolumeReports(ctx, v.ID)
	if err != nil {
		return VolumeState{}, err
	}
	return volumeState(v, reps, e.now()), nil
}

// judged is the newest report that judged the LUN (not unseen), or nil.
func judged(reps []VolumeReport) *VolumeReport {
	var j *VolumeReport
	for i, r := range reps {
		if r.Unseen == "" && (j == nil || r.ReportedAt.After(j.ReportedAt)) {
			j = &reps[i]
		}
	}
	return j
}

func volumeState(v Volume, reps []VolumeReport, now time.Time) VolumeState {
	st := VolumeState{Reports: reps}
	fresh := map[string]bool{}
	for _, r := range reps {
		if now.Sub(r.ReportedAt) <= VolumeReportStale {
			fresh[r.Node] = true
		}
		if r.Unseen != "" {
			if st.Unseen == nil {
				st.Unseen = map[string]string{}
			}
			st.Unseen[r.Node] = r.Unseen
			continue
		}
		if r.healthy() && (st.By == "" || r.ReportedAt.After(st.ReportedAt)) {
			st.UsedBytes, st.FreeBytes, st.TotalBytes = r.UsedBytes, r.FreeBytes, r.TotalBytes
			st.ReportedAt, st.By = r.ReportedAt, r.Node
		}
	}
	for _, n := range sortedKeys(v.Mounts) {
		if !fresh[n] {
			st.Stale = append(st.Stale, n)
		}
	}
	if j := judged(reps); j != nil && j.Lost != "" {
		st.Lost = &LUNLostError{Volume: v.ID, Letter: v.DriveLetter, LUN: v.LUN, Device: j.Device,
			Holds: j.Holds, Reason: j.Lost, Node: j.Node, ReportedAt: j.ReportedAt}
	}
	return st
}

// reportFromMount is what node's mount fv shows of v.
func (e *Engine) reportFromMount(v Volume, fv *kayofs.Volume) (VolumeReport, error) {
	st, at, err := e.volumeStats(fv)
	if err != nil {
		return VolumeReport{}, err
	}
	return VolumeReport{SpaceAt: at.UTC(), Volume: v.ID, Node: fv.Node(), By: e.reporter(), Device: v.Device, FSUUID: fv.UUID(), FSLabel: fv.Label(),
		TotalBytes: st.TotalBytes, UsedBytes: st.UsedBytes, FreeBytes: st.FreeBytes, Slot: fv.Slot(), SlotState: "mounted",
		ReportedAt: e.now().UTC()}, nil
}

// reportsFromDevice is what fd (v's LUN, open) shows of v for each of
// nodes: its identity, space and each node's slot.
func (e *Engine) reportsFromDevice(v Volume, fd *kayofs.FileDevice, nodes []string, by string) []VolumeReport {
	base := VolumeReport{Volume: v.ID, By: by, Device: fd.Path(), LUNBytes: fd.Size(), ReportedAt: e.now().UTC()}
	var lost *LUNLostError
	if err := checkIdentity(fd, v); errors.As(err, &lost) {
		base.Lost, base.Holds = lost.Reason, lost.Holds
		if lost.Holds != "" {
			base.Lost = "it holds volume UUID " + lost.Holds
		}
	} else if sb, err := kayofs.ReadSuperblock(fd); err != nil {
		base.Unseen = err.Error()
	} else {
		base.FSUUID, base.FSLabel = sb.UUIDString(), sb.Label
		if us, err := kayofs.Usage(fd); err != nil {
			base.Unseen = err.Error()
		} else {
			base.TotalBytes, base.UsedBytes, base.FreeBytes = us.TotalBytes, us.UsedBytes, us.FreeBytes
		}
	}
	slots := map[string]kayofs.SlotInfo{}
	if base.healthy() {
		if infos, err := kayofs.Slots(fd); err == nil {
			for _, si := range infos {
				if si.Node != "" {
					slots[si.Node] = si
				}
			}
		}
	}
	out := make([]VolumeReport, 0, len(nodes))
	for _, n := range nodes {
		r := base
		r.Node, r.Slot, r.SlotState = n, v.Mounts[n], "free"
		if si, ok := slots[n]; ok {
			r.Slot, r.SlotState = si.Slot, si.State
		}
		out = append(out, r)
	}
	return out
}

// reportOps writes reps.
func reportOps(reps ...VolumeReport) []store.Op {
	ops := make([]store.Op, 0, len(reps))
	for _, r := range reps {
		ops = append(ops, putJSON(volumeReportKey(r.Volume, r.Node), r))
	}
	return ops
}

// putReport records r: within a VM operation it rides on the operation's
// next commit of the VM (vms_hv.go), so a VM's file work costs no commit
// of its own; otherwise it commits at once.
//
// Committed alone it compares the volume record read before the change
// (rev): a report must not outlive a volume destroyed meanwhile, and a
// report beaten by a change of the volume is left to the next one.
func (e *Engine) putReport(ctx context.Context, r VolumeReport, rev int64) error {
	op := putJSON(volumeReportKey(r.Volume, r.Node), r)
	if buf := hvBufferOf(ctx); buf != nil {
		buf.putRaw(op.Key, op.Value)
		return nil
	}
	if s, ok := ctx.Value(reportSinkKey{}).(*reportSink); ok {
		s.add(r)
		return nil
	}
	_, err := e.st.Commit(ctx, []store.Cmp{store.At(volumeKey(r.Volume), rev)}, []store.Op{op})
	if isConflict(err) {
		return nil
	}
	return err
}

// reportSink gathers the volume reports of node work whose caller records
// them (WorkRequest.ReportBack) instead of committing them.
type reportSink struct {
	mu   sync.Mutex
	reps []VolumeReport
}

type reportSinkKey struct{}

// withReportSink returns ctx whose volume reports go to the returned sink.
func withReportSink(ctx context.Context) (context.Context, *reportSink) {
	s := &reportSink{}
	return context.WithValue(ctx, reportSinkKey{}, s), s
}

func (s *reportSink) add(r VolumeReport) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reps = append(s.reps, r)
}

// reports are the reports gathered so far.
func (s *reportSink) reports() []VolumeReport {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reps)
}

// nodeReportDels removes the reports of volume id by nodes.
func nodeReportDels(id string, nodes []string) []store.Op {
	ops := make([]store.Op, 0, len(nodes))
	for _, n := range nodes {
		ops = append(ops, store.Del(volumeReportKey(id, n)))
	}
	return ops
}

// deleteReportOps removes every report of volume id.
func (e *Engine) deleteReportOps(ctx context.Context, id string) ([]store.Op, error) {
	var ops []store.Op
	// The agents' reports, the recovery markers (agent_fence.go) and
	// the chunks of puts given up (volume_file_put.go) go with the volume.
	for _, prefix := range []string{volumeReportsPrefix, volumeRecoveriesPrefix, volumeFileChunksPrefix} {
		kvs, _, err := e.st.List(ctx, prefix+id+"/")
		if err != nil {
			return nil, err
		}
		for _, kv := range kvs {
			ops = append(ops, store.Del(kv.Key))
		}
	}
	return ops, nil
}

// reporter names this process in the reports it writes.
func (e *Engine) reporter() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d", host, os.Getpid())
}

// ReportNodeVolumes is a node agent's report: for every volume node
// mounts, it opens the LUN where this process finds it and records what
// node sees (by names the agent). A LUN the node cannot open is reported
// unseen by that node, not lost.
func (e *Engine) ReportNodeVolumes(ctx context.Context, node, by string) error {
	vs, err := e.ListVolumes(ctx, "")
	if err != nil {
		return err
	}
	var errs []error
	for _, v := range vs {
		if _, ok := v.Mounts[node]; ok {
			errs = append(errs, e.reportVolume(ctx, v, []string{node}, by, false))
		}
	}
	return errors.Join(errs...)
}

// reportVolume opens v's LUN and records what nodes see. lab says this
// process stands for the lab's nodes, whose LUN is this machine's: a
// missing one is lost, not unseen.
func (e *Engine) reportVolume(ctx context.Context, v Volume, nodes []string, by string, lab bool) error {
	if len(nodes) == 0 {
		return nil
	}
	fd, err := e.openVolumeDevice(v)
	var reps []VolumeReport
	var lost *LUNLostError
	switch {
	case err == nil:
		reps = e.reportsFromDevice(v, fd, nodes, by)
		_ = fd.Close()
	case errors.As(err, &lost):
		r := VolumeReport{Volume: v.ID, By: by, Device: lost.Device, Lost: lost.Reason, Holds: lost.Holds, ReportedAt: e.now().UTC()}
		if !lab && lost.Holds == "" && errors.Is(err, os.ErrNotExist) {
			r.Lost, r.Unseen = "", fmt.Sprintf("%s: %s", lost.Device, lost.Reason)
		}
		for _, n := range nodes {
			r.Node, r.Slot = n, v.Mounts[n]
			reps = append(reps, r)
		}
	default:
		for _, n := range nodes {
			reps = append(reps, VolumeReport{Volume: v.ID, Node: n, By: by, Device: v.Device, Slot: v.Mounts[n],
				Unseen: tidy(err).Error(), ReportedAt: e.now().UTC()})
		}
	}
	// Only while the volume is still recorded: a report must not outlive
	// a volume destroyed meanwhile.
	_, err = e.st.Commit(ctx, []store.Cmp{store.At(volumeKey(v.ID), v.Revision)}, reportOps(reps...))
	if isConflict(err) {
		return nil
	}
	return err
}

// spaceGate shares one space computation among the operations of one
// volume that finish together: an operation needs a computation that
// started after its change, so it joins the next one while one runs. A
// computation reads every allocation group under its lock, so one per
// change would cost each VM operation as much as its file work.
type spaceGate struct {
	mu      sync.Mutex
	running *spaceCalc
	pending *spaceCalc
	// last is the newest computation's result and when it ended.
	last   kayofs.VolumeStats
	lastAt time.Time
}

// spaceEvery bounds how often a process recomputes a volume's space for
// the reports of its changes: within it a report carries the last
// figures (SpaceAt says when they were taken), and the next change after
// it, or the node agent's heartbeat, brings them up to date.
const spaceEvery = time.Second

type spaceCalc struct {
	done chan struct{}
	st   kayofs.VolumeStats
	err  error
}

// volumeStats returns the space of fv's volume and when it was taken:
// as of after the caller's change (see spaceGate), unless the last
// computation is younger than spaceEvery.
func (e *Engine) volumeStats(fv *kayofs.Volume) (kayofs.VolumeStats, time.Time, error) {
	gv, _ := e.spaceGates.LoadOrStore(fv.UUID(), &spaceGate{})
	g := gv.(*spaceGate)
	now := e.now()
	g.mu.Lock()
	if !g.lastAt.IsZero() && now.Sub(g.lastAt) < spaceEvery {
		st, at := g.last, g.lastAt
		g.mu.Unlock()
		return st, at, nil
	}
	g.mu.Unlock()
	st, err := g.stats(fv, now)
	return st, now, err
}

func (g *spaceGate) stats(fv *kayofs.Volume, now time.Time) (kayofs.VolumeStats, error) {
	g.mu.Lock()
	if g.running == nil {
		c := &spaceCalc{done: make(chan struct{})}
		g.running = c
		g.mu.Unlock()
		return g.run(c, fv, now)
	}
	prev, c, lead := g.running, g.pending, false
	if c == nil {
		c, lead = &spaceCalc{done: make(chan struct{})}, true
		g.pending = c
	}
	g.mu.Unlock()
	if !lead {
		<-c.done
		return c.st, c.err
	}
	<-prev.done
	g.mu.Lock()
	g.pending = nil
	if g.running == nil {
		g.running = c
	}
	g.mu.Unlock()
	return g.run(c, fv, now)
}

func (g *spaceGate) run(c *spaceCalc, fv *kayofs.Volume, now time.Time) (kayofs.VolumeStats, error) {
	c.st, c.err = fv.Stats()
	g.mu.Lock()
	if g.running == c {
		g.running = nil
	}
	if c.err == nil && now.After(g.lastAt) {
		g.last, g.lastAt = c.st, now
	}
	g.mu.Unlock()
	close(c.done)
	return c.st, c.err
}
