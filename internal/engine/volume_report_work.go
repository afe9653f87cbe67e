package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// The lab's volume reports (ReportLabVolumes) are node work too: with no
// agent on the embedded database the engine's in-process executor of a
// volume's first node opens the LUN and reports, through the same
// request/result protocol as an agent's work (nodework.go); the calling
// process opens no device itself.

// workVolumeReport reports what the lab's nodes see of a volume's LUN
// (args: volumeReportArgs).
const workVolumeReport = "volume.report"

// volumeReportArgs asks for the reports of Volume by Nodes; Lab: the
// nodes are the lab's, whose LUN is the executor's machine's (a missing
// one is lost, not unseen).
type volumeReportArgs struct {
	Volume string   `json:"volume"`
	Nodes  []string `json:"nodes"`
	Lab    bool     `json:"lab,omitempty"`
}

// ReportLabVolumes reports, for every node that mounts it, each volume of
// the lab: the embedded default with no agent, where the provider and
// kayoctl run the lab's node executors in-process, and every volume's
// LUN is this machine's, so a missing image is a lost LUN. The executor
// of each volume's first node reports (reportVolumeHere). On etcd it does
// nothing: the nodes' agents report on their heartbeats
// (ReportNodeVolumes), and the control plane opens no device
// (docs/ARCHITECTURE.md).
func (e *Engine) ReportLabVolumes(ctx context.Context) error {
	if e.remoteDB {
		return nil
	}
	vs, err := e.ListVolumes(ctx, "")
	if err != nil {
		return err
	}
	var errs []error
	for _, v := range vs {
		nodes := sortedKeys(v.Mounts)
		if len(nodes) == 0 {
			continue
		}
		args, err := json.Marshal(volumeReportArgs{Volume: v.ID, Nodes: nodes, Lab: true})
		if err != nil {
			return err
		}
		obj := volumeReportWorkObject(v.ID)
		res, err := e.nodeWork(ctx, nodes[0], WorkRequest{Op: workVolumeReport, Object: obj, Args: args})
		if err != nil {
			errs = append(errs, fmt.Errorf("volume %s (%s): %w", v.DriveLetter, v.ID, err))
			continue
		}
		e.dropResult(ctx, nodes[0], obj, res) // nothing else reads it
	}
	return errors.Join(errs...)
}

// reportVolumeHere (run by a node's executor) records what a.Nodes see of
// a.Volume's LUN, as this machine finds it. A volume gone meanwhile is no
// error.
func (e *Engine) reportVolumeHere(ctx context.Context, a volumeReportArgs, by string) error {
	v, err := e.GetVolume(ctx, a.Volume)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var nodes []string
	for _, n := range a.Nodes {
		if _, ok := v.Mounts[n]; ok {
			nodes = append(nodes, n)
		}
	}
	return e.reportVolume(ctx, v, nodes, by, a.Lab)
}
