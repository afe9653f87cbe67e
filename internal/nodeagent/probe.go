package nodeagent

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/netprobe"
)

// probeInterval is how often an agent probes the other nodes: well within
// engine.ProbeMaxAge.
const probeInterval = 5 * time.Second

// prober answers the other agents' probes and, every probeInterval,
// probes each other node of its cluster on every network both have an
// adapter in, recording the round in the cluster database.
type prober struct {
	e       *engine.Engine
	node    string
	port    int
	logf    func(string, ...any)
	resp    *netprobe.Responder
	cluster string
	key     []byte // the cluster's probe key (engine.ProbeSecret)
	lastErr string
	// now is this machine's clock (time.Now; --clock-skew moves it, to
	// test the clock offset the probes measure).
	now func() time.Time
}

func (p *prober) clock() time.Time {
	if p.now == nil {
		return time.Now()
	}
	return p.now()
}

// run probes every probeInterval until ctx ends, in its own goroutine:
// a round waiting on a silent peer must not delay the heartbeats.
func (p *prober) run(ctx context.Context) {
	defer p.stop()
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		p.round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// round probes once. The responder follows the node's cluster (probes of
// another cluster are not answered).
func (p *prober) round(ctx context.Context) {
	cluster, from, targets, err := p.e.ProbeTargets(ctx, p.node)
	if err != nil {
		p.fail(fmt.Errorf("probing: %w", err))
		return
	}
	if cluster != p.cluster {
		p.stop()
		p.cluster = cluster
		if cluster == "" {
			return
		}
		if p.key, err = p.e.ProbeSecret(ctx, cluster); err != nil {
			p.fail(fmt.Errorf("probing: %w", err))
			p.cluster = "" // retry next round
			return
		}
		addr := fmt.Sprintf(":%d", p.port)
		if p.resp, err = netprobe.Listen(addr, cluster, p.node, p.key); err != nil {
			p.fail(err)
			p.cluster = "" // retry next round
			return
		}
		p.resp.Now = p.clock
		go func(r *netprobe.Responder) { _ = r.Serve() }(p.resp)
		p.logf("answering network probes of cluster %s on UDP %s", cluster, addr)
	}
	if cluster == "" {
		return
	}
	round := engine.ProbeRound{Results: make([]netprobe.Result, len(targets))}
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			round.Results[i] = netprobe.Probe(ctx, cluster, p.node, p.key, from[t.Network], t, p.port, 3, 500*time.Millisecond, p.clock)
		}()
	}
	wg.Wait()
	// The round's time in the cluster's time: this clock less its offset,
	// so a skewed node's round is judged fresh or stale as the others'.
	off, peers := netprobe.ClusterOffset(round.Results)
	round.At = p.clock().Add(-off).UTC()
	if peers > 0 || len(targets) == 0 {
		round.ClockOffset = &off
	}
	if err := p.e.RecordProbes(ctx, cluster, p.node, round); err != nil {
		p.fail(fmt.Errorf("recording probes: %w", err))
		return
	}
	for _, r := range round.Results {
		if !r.Reachable {
			p.fail(fmt.Errorf("probe of %s on %s (%s): %s", r.To, r.Network, r.Address, r.Error))
			return
		}
	}
	p.lastErr = ""
}

func (p *prober) fail(err error) {
	if err.Error() != p.lastErr {
		p.logf("%v", err)
		p.lastErr = err.Error()
	}
}

func (p *prober) stop() {
	if p.resp != nil {
		_ = p.resp.Close()
		p.resp = nil
	}
}
