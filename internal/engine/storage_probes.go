package engine

import (
	"context"
	"strings"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/validate"
	"github.com/kayo-labs/terraform-provider-kayo/internal/storageprobe"
)

// The node agents' storage probes (storageprobe): one record per node of
// a cluster, rewritten every round. With any fresh one, validation's
// Storage category is judged from them (validate/storage_probed.go).

// StorageProbeMaxAge is how old a node's storage round may be and still
// count.
const StorageProbeMaxAge = 2 * time.Minute

// StorageRound is one node's probes of its cluster's volumes.
type StorageRound struct {
	At      time.Time             `json:"at"`
	Results []storageprobe.Result `json:"results"`
}

// RecordStorageProbes stores node's latest round.
func (e *Engine) RecordStorageProbes(ctx context.Context, cluster, node string, r StorageRound) error {
	_, err := e.st.Commit(ctx, nil, []store.Op{putJSON(storageProbeKey(cluster, node), r)})
	return err
}

// StorageTargets returns node's cluster and a probe target for each
// volume of it that node mounts, its LUN as node resolves it on the host
// of roots. A volume it cannot resolve is left out (validation then says
// the node's result is missing).
func (e *Engine) StorageTargets(ctx context.Context, node string, roots LUNRoots) (string, []storageprobe.Target, error) {
	h, err := e.GetHost(ctx, node)
	if err != nil || h.Cluster == "" {
		return "", nil, err
	}
	vs, err := e.ListVolumes(ctx, h.Cluster)
	if err != nil {
		return "", nil, err
	}
	var ts []storageprobe.Target
	for _, v := range vs {
		slot, ok := v.Mounts[node]
		if !ok {
			continue
		}
		p, err := ResolveLUN(v.VolumeSpec, node, roots)
		if err != nil {
			continue
		}
		ts = append(ts, storageprobe.Target{Volume: v.ID, Letter: v.DriveLetter, Path: p, Slot: slot, Node: node})
	}
	return h.Cluster, ts, nil
}

// withStorageProbes gives the validator the fresh storage rounds of the
// cluster's nodes and its volumes; nothing when no node probes.
func (e *Engine) withStorageProbes(ctx context.Context, in validate.Input) (validate.Input, error) {
	kvs, _, err := e.st.List(ctx, storageProbeClusterPrefix(in.ClusterName))
	if err != nil {
		return in, err
	}
	st := &validate.StorageInput{Probes: map[string][]validate.StorageResult{}}
	for _, kv := range kvs {
		var r StorageRound
		if err := decode(kv, &r); err != nil {
			return in, err
		}
		if e.now().Sub(r.At) > StorageProbeMaxAge {
			continue
		}
		rs := make([]validate.StorageResult, 0, len(r.Results))
		for _, x := range r.Results {
			rs = append(rs, validate.StorageResult{Volume: x.Volume, Path: x.Path, Seen: x.Seen, UUID: x.UUID, SizeBytes: x.SizeBytes,
				FSBytes: x.FSBytes, OldFormat: x.OldFormat, Leased: x.Leased, Wrote: x.Wrote, ReadFrom: x.ReadFrom, Error: x.Error})
		}
		st.Probes[strings.TrimPrefix(kv.Key, storageProbeClusterPrefix(in.ClusterName))] = rs
	}
	if len(st.Probes) == 0 {
		return in, nil
	}
	vs, err := e.ListVolumes(ctx, in.ClusterName)
	if err != nil {
		return in, err
	}
	for _, v := range vs {
		st.Volumes = append(st.Volumes, validate.StorageVolume{ID: v.ID, Letter: v.DriveLetter, LUN: lunName(v.VolumeSpec)})
	}
	in.Storage = st
	return in, nil
}
