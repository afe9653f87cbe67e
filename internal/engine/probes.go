package engine

import (
	"context"
	"net/netip"
	"strings"
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

// freshProbes returns the probes of cluster's nodes no older than
// ProbeMaxAge, and which nodes sent them.
func (e *Engine) freshProbes(ctx context.Context, cluster string) ([]validate.Probe, map[string]bool, error) {
	kvs, _, err := e.st.List(ctx, probeClusterPrefix(cluster))
	if err != nil {
		return nil, nil, err
	}
	var out []validate.Probe
	probing := map[string]bool{}
	for _, kv := range kvs {
		var r ProbeRound
		if err := decode(kv, &r); err != nil {
			return nil, nil, err
		}
		if e.now().Sub(r.At) > ProbeMaxAge {
			continue
		}
		from := strings.TrimPrefix(kv.Key, probeClusterPrefix(cluster))
		probing[from] = true
		for _, x := range r.Results {
			p := validate.Probe{From: from, To: x.To, Reachable: x.Reachable, RTT: x.RTT, Error: x.Error}
			p.Network, _ = netip.ParsePrefix(x.Network)
			p.Address, _ = netip.ParseAddr(x.Address)
			out = append(out, p)
		}
	}
	return out, probing, nil
}

// liveInput adds what the agents report and probe to a validation input.
func (e *Engine) liveInput(ctx context.Context, in validate.Input) (validate.Input, error) {
	reports, err := e.freshReports(ctx)
	if err != nil {
		return in, err
	}
	in = withReports(in, reports)
	in.Probes, in.Probing, err = e.freshProbes(ctx, in.ClusterName)
	return in, err
}
