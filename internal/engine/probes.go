package engine

import (
	"context"
	"net/netip"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/validate"
	"github.com/kayo-labs/terraform-provider-kayo/internal/netprobe"
)

// The node agents' network probes (netprobe): one record per node of a
// cluster, rewritten every round. Validation's Network Communication test
// reads the fresh ones.

// ProbeMaxAge is how old a node's probe round may be and still count.
const ProbeMaxAge = time.Minute

// ProbeRound is one node's probes of every other node on every network.
type ProbeRound struct {
	At      time.Time         `json:"at"`
	Results []netprobe.Result `json:"results"`
	// ClockOffset is the node's clock against the cluster's
	// (netprobe.ClusterOffset; docs/ARCHITECTURE.md, "Clock offset"); nil
	// when no peer answered.
	ClockOffset *time.Duration `json:"clock_offset_ns,omitempty"`
}

// RecordProbes stores node's latest round.
func (e *Engine) RecordProbes(ctx context.Context, cluster, node string, r ProbeRound) error {
	_, err := e.st.Commit(ctx, nil, []store.Op{putJSON(probeKey(cluster, node), r)})
	return err
}

// ProbeSecret is cluster's key for authenticating network probes, made
// once: only agents (which reach the cluster database) can ask or answer.
func (e *Engine) ProbeSecret(ctx context.Context, cluster string) ([]byte, error) {
	return e.secretOnce(ctx, probeSecretKey(cluster))
}

// ProbeTargets returns, for node, every other node's address on each
// network both have an adapter in, with node's own address there.
func (e *Engine) ProbeTargets(ctx context.Context, node string) (cluster string, from map[netip.Prefix]netip.Addr, targets []netprobe.Target, err error) {
	h, err := e.GetHost(ctx, node)
	if err != nil || h.Cluster == "" {
		return "", nil, nil, err
	}
	c, err := e.GetCluster(ctx, h.Cluster)
	if err != nil {
		return "", nil, nil, err
	}
	from = map[netip.Prefix]netip.Addr{}
	for _, a := range h.Adapters {
		p, perr := netip.ParsePrefix(a.Network)
		addr, aerr := netip.ParseAddr(a.Address)
		if perr == nil && aerr == nil {
			from[p.Masked()] = addr
		}
	}
	for _, peer := range c.Nodes {
		if peer == node {
			continue
		}
		ph, err := e.GetHost(ctx, peer)
		if err != nil {
			continue // an unregistered node is validation's to report
		}
		for _, a := range ph.Adapters {
			p, perr := netip.ParsePrefix(a.Network)
			addr, aerr := netip.ParseAddr(a.Address)
			if perr != nil || aerr != nil {
				continue
			}
			if _, ok := from[p.Masked()]; ok {
				targets = append(targets, netprobe.Target{Node: peer, Network: p.Masked(), Address: addr})
			}
		}
	}
	return c.Name, from, targets, nil
}

// liveInput adds what the agents report and probe to a validation input,
// and names the nodes whose agent's records are unusable.
func (e *Engine) liveInput(ctx context.Context, in validate.Input) (validate.Input, error) {
	reports, bad, err := e.readReports(ctx)
	if err != nil {
		return in, err
	}
	in = withReports(in, reports)
	in.NotReporting = bad
	pr, err := e.readProbes(ctx, in.ClusterName)
	if err != nil {
		return in, err
	}
	in.Probes, in.Probing, in.ProbedAt, in.Clocks, in.NotProbing = pr.probes, pr.probing, pr.at, pr.clocks, pr.bad
	return e.withStorageProbes(ctx, in) // storage_probes.go
}
