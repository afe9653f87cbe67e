package nodeagent

import (
	"context"
	"fmt"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
)

// Config configures a node agent's process (Run); `kayoctl agent`'s flags
// set it.
type Config struct {
	// Node is the host the agent runs for.
	Node string
	// Interval is how often it ticks (heartbeat, lease, leader duties);
	// LeaseTTL the leader lease's lifetime (DefaultLeaseTTL when 0).
	Interval time.Duration
	LeaseTTL time.Duration
	// ReportFacts: report this machine (kayo_host.reported), with LUNs,
	// LUN paths to report besides the scanned ones.
	ReportFacts bool
	LUNs        []string
	// ProbePort is the UDP port of the network probes (0: none); ClockSkew
	// moves the probes' clock (tests of the clock offset).
	ProbePort int
	ClockSkew time.Duration
	// StorageProbeInterval is how often the cluster's LUNs are probed (0:
	// never).
	StorageProbeInterval time.Duration
	// MigrationAddress is where incoming live migrations listen.
	MigrationAddress string
	// Logf receives what the agent does.
	Logf func(format string, args ...any)
}

// Run runs node cfg.Node's agent on e until ctx ends: its executors (the
// node's work, its QEMU VMs), its reports and probes, and every interval
// a Tick. Then it stops the executors, releases the leader lease and
// returns.
func Run(ctx context.Context, e *engine.Engine, cfg Config) error {
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if cfg.Interval <= 0 {
		return fmt.Errorf("node agent of %s: interval %s: want more than 0", cfg.Node, cfg.Interval)
	}
	a, err := New(e, AgentConfig{Node: cfg.Node, LeaseTTL: cfg.LeaseTTL})
	if err != nil {
		return err
	}
	logf("started (id %s, interval %s, lease %s, data dir %s)", a.ID(), cfg.Interval, cfg.LeaseTTL, e.DataDir())
	defer startQEMU(ctx, e, cfg.Node, a.ID(), cfg.MigrationAddress, logf)() // VMs of qemu clusters (executors.go)
	defer startWork(ctx, e, cfg.Node, a.ID(), logf)()                       // the node's data plane (executors.go)
	var facts factsReporter
	if cfg.ReportFacts {
		facts = factsReporter{e: e, node: cfg.Node, logf: logf, luns: cfg.LUNs}
	}
	if cfg.ProbePort != 0 {
		p := &prober{e: e, node: cfg.Node, port: cfg.ProbePort, logf: logf}
		if cfg.ClockSkew != 0 {
			d := cfg.ClockSkew
			p.now = func() time.Time { return time.Now().Add(d) }
		}
		go p.run(ctx)
	}
	if cfg.StorageProbeInterval != 0 {
		s := &storageProber{e: e, node: cfg.Node, interval: cfg.StorageProbeInterval, logf: logf}
		go s.run(ctx)
	}
	ticker := time.NewTicker(cfg.Interval)
	defer ticker.Stop()
	var last TickReport
	lastErr := ""
	for {
		// A tick must not outlive the process's wish to stop.
		rep, err := a.Tick(ctx)
		facts.tick(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			if err.Error() != lastErr {
				logf("error: %v", err)
				lastErr = err.Error()
			}
		case err == nil:
			if lastErr != "" {
				logf("recovered")
				lastErr = ""
			}
			if rep.Cluster != last.Cluster {
				if rep.Cluster == "" {
					logf("not a node of any cluster")
				} else {
					logf("node of cluster %s", rep.Cluster)
				}
			}
			if rep.Elected {
				logf("elected leader of %s (term %d)", rep.Cluster, rep.Term)
			} else if last.Leader && !rep.Leader {
				logf("no longer leader of %s", last.Cluster)
			}
			for _, d := range rep.Decisions {
				verdict := "up (heartbeats returned)"
				if d.Down {
					verdict = "down (silent " + d.Silent.Round(time.Millisecond).String() + ")"
				}
				logf("declared %s %s (term %d)", d.Node, verdict, rep.Term)
			}
			for _, f := range rep.Failbacks {
				logf("failed VM %s back from %s to %s (term %d)", f.VM, f.From, f.To, rep.Term)
			}
			last = rep
		}
		select {
		case <-ctx.Done():
			rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := a.Release(rctx)
			rcancel()
			if err != nil {
				logf("releasing the leader lease: %v", err)
			}
			logf("stopped")
			return nil
		case <-ticker.C:
		}
	}
}
