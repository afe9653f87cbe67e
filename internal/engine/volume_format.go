package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// Formatting a new volume's LUN is node work (nodework.go): the control
// plane records the creation's intent, picks the node that formats
// (pickFormatNode, a pure decision from the agents' heartbeats and LUN
// reports) and waits for its executor, which alone opens the LUN. The
// executor's steps, each recorded in the intent before the next:
//
//  1. judge the LUN (kind, size, what it holds, mounts) and, for an
//     embedded SAN LUN not there yet, create its image (Created first);
//  2. Writing: committed before the first write, so an intent without it
//     wrote nothing and is dropped when the creation fails;
//  3. format (from scratch, every time Formatted is not recorded: a run
//     killed mid-format leaves a half-written Kayo FS that is never
//     accepted, only formatted again);
//  4. Formatted: committed after the format, so later runs keep it;
//  5. claim a slot for every node, and report what each sees.
//
// The control plane then commits the volume record with its mounts, the
// reports, and the intent's deletion in one commit.

type volumeFormatArgs struct {
	Cluster string `json:"cluster"`
	Letter  string `json:"letter"`
	// Nodes are the cluster's nodes, each given a slot.
	Nodes []string `json:"nodes"`
}

type volumeFormatOutcome struct {
	ID      string         `json:"id"`
	Mounts  map[string]int `json:"mounts"`
	Reports []VolumeReport `json:"reports,omitempty"`
}

// pickFormatNode chooses the node whose executor formats a new volume's
// LUN: the first of nodes (sorted by name) whose agent is up (agentErr
// nil) and that is not known not to see the LUN (sees false: its fresh
// report lists LUNs without it). With no such node, on the embedded
// database the first node that may see the LUN (this engine's in-process
// executor stands in for it); on etcd an error naming each node and why.
func pickFormatNode(nodes []string, agentErr map[string]error, sees map[string]bool, remote bool) (string, error) {
	var why []error
	for _, n := range nodes {
		if seen, known := sees[n]; known && !seen {
			why = append(why, fmt.Errorf("node %s does not see the LUN (its agent's report)", n))
			continue
		}
		if err := agentErr[n]; err != nil {
			why = append(why, err)
			continue
		}
		return n, nil
	}
	if !remote {
		for _, n := range nodes {
			if seen, known := sees[n]; !known || seen {
				return n, nil
			}
		}
	}
	if len(nodes) == 0 {
		return "", errors.New("the cluster has no node to format the LUN")
	}
	return "", fmt.Errorf("no node of %v can format the LUN: %w", nodes, errors.Join(why...))
}

// formatNode gathers what pickFormatNode decides from: each node's agent
// heartbeat, and whether its fresh report lists the LUN s names.
func (e *Engine) formatNode(ctx context.Context, s VolumeSpec, nodes []string) (string, error) {
	agentErr := map[string]error{}
	for _, n := range nodes {
		err := e.workAgentUp(ctx, n)
		if err != nil && !errors.Is(err, ErrAgentDown) {
			return "", err
		}
		agentErr[n] = err
	}
	reports, _, err := e.readReports(ctx)
	if err != nil {
		return "", err
	}
	sees := map[string]bool{}
	for _, n := range nodes {
		// An embedded SAN LUN not created yet is seen by no report: the
		// node that formats it creates it.
		if r, ok := reports[n]; ok && r.LUNs != nil && !s.Embedded() {
			sees[n] = lunSeen(s, n, r.LUNs)
		}
	}
	return pickFormatNode(nodes, agentErr, sees, e.remoteDB)
}

// formatVolume has node's executor carry out the creation intent of
// volume s on the cluster's nodes.
func (e *Engine) formatVolume(ctx context.Context, node string, s VolumeSpec, nodes []string) (volumeFormatOutcome, error) {
	args, err := json.Marshal(volumeFormatArgs{Cluster: s.Cluster, Letter: s.DriveLetter, Nodes: nodes})
	if err != nil {
		return volumeFormatOutcome{}, err
	}
	res, err := e.nodeWork(ctx, node, WorkRequest{Op: WorkVolumeFormat, Object: volumeNewWorkObject(s.Cluster, s.DriveLetter), Args: args})
	// A creation is rare: the node's agent, if one started meanwhile, gets
	// the node's next work at once rather than after noAgentRecheck.
	e.work.noAgent.Delete(node)
	if err != nil {
		return volumeFormatOutcome{}, err
	}
	var out volumeFormatOutcome
	if err := json.Unmarshal(res.Outcome, &out); err != nil || out.ID == "" {
		return out, fmt.Errorf("volume %s: node %s's format answered no volume (%s): %v", s.DriveLetter, node, res.Outcome, err)
	}
	return out, nil
}

// formatHere carries out a creation intent as at.Node (its executor): it
// reads the intent afresh (a re-run after a crash continues from what the
// last run recorded) and opens the LUN where the node finds it.
func (e *Engine) formatHere(ctx context.Context, at WorkSite, a volumeFormatArgs) (out volumeFormatOutcome, err error) {
	node := at.Node
	key := volumeIntentKey(a.Cluster, a.Letter)
	var in volumeIntent
	rev, err := getJSON(ctx, e.st, key, &in)
	if errors.Is(err, store.ErrNotFound) {
		return out, fmt.Errorf("volume %s: of cluster %q: its creation's intent is gone (abandoned, or finished by another run)", a.Letter, a.Cluster)
	}
	if err != nil {
		return out, err
	}
	s := in.Spec
	dev, err := ResolveLUN(s, node, LUNRoots{DataDir: e.dataDir, ByID: e.byID})
	if err != nil {
		return out, err
	}
	// put records the intent's progress, compared with its last revision:
	// a creation withdrawn or taken over meanwhile stops this run.
	put := func() error {
		r, err := e.st.Commit(ctx, []store.Cmp{store.At(key, rev)}, []store.Op{putJSON(key, in)})
		if isConflict(err) {
			return fmt.Errorf("volume %s: of cluster %q: its creation's intent changed meanwhile: %w", a.Letter, a.Cluster, ErrConflict)
		}
		rev = r
		return err
	}
	if !in.Writing {
		if err := e.judgeForFormat(&in, node, dev, put); err != nil {
			if in.Created {
				e.removeCreatedImage(in) // still empty: nothing was written
			}
			return out, err
		}
		in.Writing = true
		if err := put(); err != nil {
			return out, err
		}
	}
	if !in.Formatted {
		at.phase("format")
		if err := e.formatLUN(s, dev); err != nil {
			return out, err
		}
		at.phase("formatted")
		in.Formatted, in.Found = true, ""
		if err := put(); err != nil {
			return out, err
		}
	}
	e.countDeviceOpen()
	fd, err := kayofs.OpenDevice(dev)
	if err != nil {
		return out, fmt.Errorf("lun %q on node %s: %w", s.LUN, node, tidy(err))
	}
	defer fd.Close()
	sb, err := kayofs.ReadSuperblock(fd)
	if err != nil {
		return out, fmt.Errorf("volume %s: lun %q on node %s no longer holds the Kayo FS this creation formatted: %w", s.DriveLetter, s.LUN, node, err)
	}
	v := Volume{VolumeSpec: s, ID: sb.UUIDString(), Device: dev, Mounts: map[string]int{}}
	mfd, o, err := e.OpenVolumeMount(v) // volume_locks.go
	if err != nil {
		return out, err
	}
	defer mfd.Close()
	for _, n := range a.Nodes {
		slot, err := mountNode(mfd, n, o)
		if err != nil {
			return out, fmt.Errorf("mounting volume %s: on %s: %w", s.DriveLetter, n, err)
		}
		v.Mounts[n] = slot
	}
	return volumeFormatOutcome{ID: v.ID, Mounts: v.Mounts, Reports: e.reportsFromDevice(v, fd, a.Nodes, at.Agent)}, nil
}

// judgeForFormat checks the LUN at dev before anything is written to it
// (checkLUNKind, judgeExisting), and creates an embedded SAN LUN's image
// (recording Created first). Errors name the node that judged.
func (e *Engine) judgeForFormat(in *volumeIntent, node, dev string, put func() error) error {
	s := in.Spec
	if err := e.checkLUNKind(s, dev); err != nil {
		return onNode(err, node)
	}
	_, statErr := os.Stat(dev)
	switch {
	case statErr == nil:
		found, err := e.judgeExisting(s, dev)
		if err != nil {
			return onNode(err, node)
		}
		in.Found = found
		return nil
	case !s.Embedded():
		return &InputError{Attribute: "lun", Value: s.LUN, Detail: fmt.Sprintf("%q on node %s: %v", s.LUN, node, pathCause(statErr))}
	}
	in.Created = true
	if err := put(); err != nil {
		return err
	}
	if err := e.makeSANDir(dev); err != nil {
		return err
	}
	e.countDeviceOpen()
	fd, err := kayofs.CreateImage(dev, s.SizeGiB<<30)
	if err != nil {
		return fmt.Errorf("lun %q on node %s: %w", s.LUN, node, tidy(err))
	}
	return fd.Close()
}

// formatLUN formats the LUN at dev from scratch (exclusively opened).
func (e *Engine) formatLUN(s VolumeSpec, dev string) error {
	e.countDeviceOpen()
	fd, err := kayofs.OpenDeviceExclusive(dev)
	if err != nil {
		return fmt.Errorf("lun %q: %w", s.LUN, tidy(err))
	}
	defer fd.Close()
	if err := checkLUNSize(s, dev, fd.Size()); err != nil {
		return err
	}
	var d kayofs.Device = fd
	if e.formatDevice != nil {
		d = e.formatDevice(fd)
	}
	if _, err := kayofs.Format(d, kayofs.FormatOptions{BlockSize: s.BlockSize, Slots: s.NodeSlots, Label: s.Label, Force: true}); err != nil {
		return fmt.Errorf("formatting lun %q: %w", s.LUN, err)
	}
	return nil
}

// onNode adds, to an error about the LUN as one node found it, which
// node that was.
func onNode(err error, node string) error {
	var in *InputError
	if errors.As(err, &in) {
		c := *in
		c.Detail = fmt.Sprintf("%s (as node %s found it; nothing was formatted)", c.Detail, node)
		return &c
	}
	return fmt.Errorf("node %s: %w", node, err)
}
