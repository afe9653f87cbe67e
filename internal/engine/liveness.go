package engine

import (
	"context"
	"slices"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// A cluster's liveness record lists its down nodes. It is written in the
// same commit as every change of a node's Down flag (and with membership
// changes), so a quorum check compares one key, not every node's host
// record: updates of different hosts of one cluster then never conflict
// with each other, only with a node actually going down or up.

type livenessRecord struct {
	Down []string `json:"down"`
}

// livenessOp records which of c's nodes are down in hosts.
func livenessOp(cluster string, nodes []string, hosts map[string]Host) store.Op {
	rec := livenessRecord{Down: []string{}}
	for _, n := range nodes {
		if h, ok := hosts[n]; !ok || h.Down {
			rec.Down = append(rec.Down, n)
		}
	}
	slices.Sort(rec.Down)
	return putJSON(livenessKey(cluster), rec)
}

// nodeStatesFrom returns c's nodes with their Down flags as of the
// liveness record kv (read by GetMany: a missing record has no revision),
// and the comparison that pins it. A cluster formed before the record
// existed falls back to its nodes' host records.
//
// hosts may be nil: a node cannot be unregistered while it is a node, so
// the record and the cluster's node list are enough; only the fallback
// reads the hosts.
func (e *Engine) nodeStatesFrom(ctx context.Context, c Cluster, kv store.KV, hosts map[string]Host) ([]Host, []store.Cmp, error) {
	if !kv.Exists() {
		if hosts == nil {
			var err error
			if hosts, err = e.hostMap(ctx); err != nil {
				return nil, nil, err
			}
		}
		nodes := clusterNodes(c, hosts)
		cmps := []store.Cmp{store.Absent(livenessKey(c.Name))}
		for _, n := range c.Nodes {
			if h, ok := hosts[n]; ok {
				cmps = append(cmps, store.At(hostKey(n), h.Revision))
			}
		}
		return nodes, cmps, nil
	}
	var rec livenessRecord
	if err := decode(kv, &rec); err != nil {
		return nil, nil, err
	}
	nodes := make([]Host, 0, len(c.Nodes))
	for _, n := range c.Nodes {
		h, ok := hosts[n]
		if !ok {
			h = Host{HostSpec: HostSpec{Name: n}, Cluster: c.Name}
		}
		h.Down = slices.Contains(rec.Down, n)
		nodes = append(nodes, h)
	}
	return nodes, []store.Cmp{store.At(livenessKey(c.Name), kv.ModRevision), store.At(clusterKey(c.Name), c.Revision)}, nil
}
