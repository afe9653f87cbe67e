package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/netprobe"
	"github.com/kayo-labs/terraform-provider-kayo/internal/nodeagent"
)

// agent runs the node agent (nodeagent.Run) until SIGINT/SIGTERM: every
// interval it heartbeats, campaigns for its cluster's leader lease and,
// while it leads, declares silent nodes down and returning ones up, fails
// their VMs over, finishes drains of nodes in maintenance and fails VMs
// back per their failback policy (nodeagent.Agent.Tick); its executors
// carry out its node's work.
func (c *cli) agent(args []string) error {
	fs := c.newFlagSet("agent")
	node := fs.String("node", "", "the host this agent runs for (required)")
	interval := fs.Duration("interval", time.Second, "heartbeat and leader-check interval")
	lease := fs.Duration("lease", 0, "leader lease lifetime (default 3 × interval; held on a store lease, rounded up to whole seconds)")
	reportFacts := fs.Bool("report-facts", true, "report this machine's processor, memory, adapters and hypervisor (kayo_host.reported; validated against the declared facts)")
	probePort := fs.Int("probe-port", netprobe.DefaultPort, "UDP port this agent answers the other nodes' network probes on, and probes theirs on; 0: no probes")
	skew := fs.Duration("clock-skew", 0, "for tests: the clock this agent's network probes carry runs this far ahead of the machine's (negative: behind), to see the clock offset validation reports")
	storageEvery := fs.Duration("storage-probe-interval", nodeagent.DefaultStorageProbeInterval, "how often to probe the LUN of each volume of this node's cluster (identity, size, a lease, a block written and the other nodes' read back; the Storage validation); 0: no storage probes")
	var luns fileList
	fs.Var(&luns, "lun", "a LUN path to report besides the block devices and the embedded SAN (a file-backed LUN image); repeatable")
	migAddr := fs.String("migration-address", "127.0.0.1", "the IP address of this host's migration network: incoming live migrations of qemu clusters listen there (TLS with the cluster's key)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if ip := net.ParseIP(*migAddr); ip == nil || ip.IsUnspecified() {
		return usagef("agent: --migration-address %q is not allowed; allowed: one IP address of this host (not 0.0.0.0 or ::)", *migAddr)
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *probePort < 0 || *probePort > 65535 {
		return usagef("agent: --probe-port %d is not allowed; allowed: 1 to 65535, or 0 for no probes", *probePort)
	}
	if *node == "" {
		return usagef("agent: --node NAME is required")
	}
	if err := checkStorageInterval(*storageEvery); err != nil {
		return err
	}
	if *interval < 10*time.Millisecond || *interval > time.Hour {
		return usagef("agent: --interval %s is not allowed; allowed: 10ms to 1h", *interval)
	}
	if *lease == 0 {
		*lease = 3 * *interval
	}
	if *lease <= *interval {
		return usagef("agent: --lease %s must be longer than --interval %s (it is renewed every interval)", *lease, *interval)
	}
	ctx, cancel := c.signalContext()
	defer cancel()
	logf := func(format string, args ...any) {
		_, _ = fmt.Fprintf(c.stderr, "%s agent %s: %s\n", time.Now().Format("15:04:05.000"), *node, fmt.Sprintf(format, args...))
	}
	e, err := c.openWaiting(ctx, logf)
	if err != nil {
		return err
	}
	defer closeEngine(e)
	return nodeagent.Run(ctx, e, nodeagent.Config{Node: *node, Interval: *interval, LeaseTTL: *lease,
		ReportFacts: *reportFacts, LUNs: luns, ProbePort: *probePort, ClockSkew: *skew,
		StorageProbeInterval: *storageEvery, MigrationAddress: *migAddr, Logf: logf})
}

func checkStorageInterval(d time.Duration) error {
	if d != 0 && (d < 100*time.Millisecond || d > time.Minute) {
		return usagef("agent: --storage-probe-interval %s is not allowed; allowed: 100ms to 1m, or 0 for no storage probes", d)
	}
	return nil
}

// openWaiting opens the cluster database, waiting while it is unavailable:
// an agent started before its etcd (a host that boots first) keeps trying,
// with a growing pause, instead of exiting. Other errors end it.
func (c *cli) openWaiting(ctx context.Context, logf func(string, ...any)) (*engine.Engine, error) {
	for delay := time.Second; ; delay = min(2*delay, 30*time.Second) {
		e, err := c.open()
		if err == nil || !errors.Is(err, store.ErrUnavailable) {
			return e, err
		}
		logf("cluster database unavailable, trying again in %s: %v", delay, err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(delay):
		}
	}
}
