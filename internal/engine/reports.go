package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/validate"
	"github.com/kayo-labs/terraform-provider-kayo/internal/hostfacts"
)

// Reading the node agents' records for validation. An agent's record is
// data only when it decodes, is of this version, is in range and is
// fresh; any other is never read as data: its node is named, with why, as
// not reporting (validate.Input.NotReporting, NotProbing).

// readReport decodes and checks one host report.
func readReport(kv store.KV) (hostfacts.Report, error) {
	var r hostfacts.Report
	if err := json.Unmarshal(kv.Value, &r); err != nil {
		return r, fmt.Errorf("%w: the record is unreadable (%v)", ErrBadReport, err)
	}
	if err := r.Check(); err != nil {
		return r, fmt.Errorf("%w: %v", ErrBadReport, err)
	}
	return r, nil
}

// readReports returns the usable fresh reports by host, and why each
// other report is not used.
func (e *Engine) readReports(ctx context.Context) (fresh map[string]hostfacts.Report, bad map[string]string, err error) {
	kvs, _, err := e.st.List(ctx, hostReportsPrefix)
	if err != nil {
		return nil, nil, err
	}
	fresh, bad = map[string]hostfacts.Report{}, map[string]string{}
	for _, kv := range kvs {
		node := strings.TrimPrefix(kv.Key, hostReportsPrefix)
		r, err := readReport(kv)
		switch {
		case err != nil:
			bad[node] = strings.TrimPrefix(err.Error(), ErrBadReport.Error()+": ")
		case e.now().Sub(r.ReportedAt) > ReportMaxAge:
			bad[node] = fmt.Sprintf("its agent last reported at %s, more than %s ago: it stopped", r.ReportedAt.UTC().Format(time.RFC3339), ReportMaxAge)
		default:
			fresh[node] = r
		}
	}
	return fresh, bad, nil
}

// probeData is the usable fresh probe rounds of a cluster's nodes.
type probeData struct {
	probes  []validate.Probe
	probing map[string]bool
	at      map[string]time.Time
	clocks  map[string]validate.Clock
	bad     map[string]string // node → why its round is not used
}

// readRound decodes and checks one probe round.
func readRound(kv store.KV) (ProbeRound, error) {
	var r ProbeRound
	if err := json.Unmarshal(kv.Value, &r); err != nil {
		return r, fmt.Errorf("the probe record is unreadable (%v)", err)
	}
	if r.At.IsZero() {
		return r, fmt.Errorf("the probe record has no time")
	}
	for _, x := range r.Results {
		if _, err := netip.ParsePrefix(x.Network); err != nil || x.To == "" || x.RTT < 0 {
			return r, fmt.Errorf("the probe record holds a result with no peer, network or round trip (to %q, network %q)", x.To, x.Network)
		}
	}
	if r.ClockOffset != nil && r.ClockOffset.Abs() > 100*365*24*time.Hour {
		return r, fmt.Errorf("clock offset %s is out of range", *r.ClockOffset)
	}
	return r, nil
}

// readProbes returns cluster's usable probe rounds no older than
// ProbeMaxAge.
func (e *Engine) readProbes(ctx context.Context, cluster string) (probeData, error) {
	d := probeData{probing: map[string]bool{}, at: map[string]time.Time{}, clocks: map[string]validate.Clock{}, bad: map[string]string{}}
	kvs, _, err := e.st.List(ctx, probeClusterPrefix(cluster))
	if err != nil {
		return d, err
	}
	for _, kv := range kvs {
		from := strings.TrimPrefix(kv.Key, probeClusterPrefix(cluster))
		r, err := readRound(kv)
		if err != nil {
			d.bad[from] = err.Error()
			continue
		}
		if e.now().Sub(r.At) > ProbeMaxAge {
			d.bad[from] = fmt.Sprintf("its agent last probed at %s, more than %s ago: it stopped", r.At.UTC().Format(time.RFC3339), ProbeMaxAge)
			continue
		}
		d.probing[from], d.at[from] = true, r.At
		if r.ClockOffset != nil {
			d.clocks[from] = validate.Clock{Offset: *r.ClockOffset, At: r.At}
		}
		for _, x := range r.Results {
			p := validate.Probe{From: from, To: x.To, Reachable: x.Reachable, RTT: x.RTT, Error: x.Error}
			p.Network, _ = netip.ParsePrefix(x.Network)
			p.Address, _ = netip.ParseAddr(x.Address)
			d.probes = append(d.probes, p)
		}
	}
	return d, nil
}

// HostClock returns node's clock offset against its cluster's as its
// agent last measured it (fresh rounds only); ok is false when there is
// none (not a node, no agent probing, no peer answered).
func (e *Engine) HostClock(ctx context.Context, node string) (c validate.Clock, ok bool, err error) {
	h, err := e.GetHost(ctx, node)
	if err != nil || h.Cluster == "" {
		return c, false, err
	}
	kv, err := e.st.Get(ctx, probeKey(h.Cluster, node))
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			err = nil
		}
		return c, false, err
	}
	r, err := readRound(kv)
	if err != nil || r.ClockOffset == nil || e.now().Sub(r.At) > ProbeMaxAge {
		return c, false, nil
	}
	return validate.Clock{Offset: *r.ClockOffset, At: r.At}, true, nil
}

// hypervisorReport converts a report's hypervisor for validation.
func hypervisorReport(h *hostfacts.Hypervisor) *validate.HypervisorReport {
	if h == nil {
		return nil
	}
	return &validate.HypervisorReport{Name: h.Name, Version: h.Version, Accel: h.Accel}
}
