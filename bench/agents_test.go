package bench

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/etcdtest"
	"github.com/kayo-labs/terraform-provider-kayo/internal/nodeagent/workexec"
)

// The agents scenarios of the VM benchmark (see doc.go): the same 200 VMs,
// their node work (VM files, simulator calls) done by 16 node agents
// instead of the provider's in-process executors. The agents are the
// work executors `kayoctl agent` runs (engine.NewWorkExecutor: heartbeat,
// poke socket, polling), one per host, in this benchmark's process: a
// process of their own beside the CLI's provider, as on a real host, and
// they are started before the round's timed phases and stopped after its
// destroy, untimed.

// agentsDB is where an agents scenario keeps the cluster database.
type agentsDB struct {
	etcd []string // endpoints; none: the embedded database in the data dir
}

// config is the engine configuration of the round's data dir.
func (d agentsDB) config(dataDir string, round int) engine.Config {
	cfg := engine.Config{DataDir: dataDir, LocalExecutor: workexec.Local}
	if len(d.etcd) > 0 {
		cfg.Etcd = &store.EtcdOptions{Endpoints: d.etcd, Prefix: etcdPrefix(round)}
	}
	return cfg
}

// providerBlock is the provider block of the round's configuration.
func (d agentsDB) providerBlock(dataDir string, round int) string {
	if len(d.etcd) == 0 {
		return fmt.Sprintf("provider \"kayo\" {\n  data_dir = %q\n}\n", dataDir)
	}
	return fmt.Sprintf("provider \"kayo\" {\n  data_dir = %q\n  etcd {\n    endpoints = %q\n    prefix    = %q\n  }\n}\n",
		dataDir, d.etcd, etcdPrefix(round))
}

// etcdPrefix keeps each round's records apart in the one etcd.
func etcdPrefix(round int) string { return fmt.Sprintf("/kayo-bench/%d/", round) }

// startEtcd starts the etcd of the etcd scenarios (internal/etcdtest).
func startEtcd(b *testing.B) []string {
	return etcdtest.Start(b, etcdtest.Options{}).Endpoints()
}

// agents is the 16 hosts' work executors of one round.
type agents struct {
	e    *engine.Engine
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// startAgents starts one work executor per host of the lab in cfg and
// waits for each one's heartbeat, so the provider sends them the work.
func startAgents(b *testing.B, cfg engine.Config) *agents {
	e, err := engine.Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	a := &agents{e: e, stop: stop}
	for i := 0; i < vmHosts; i++ {
		x := workexec.New(e, workexec.Config{Node: benchHost(i), Agent: fmt.Sprintf("bench-agent-%02d", i)})
		a.wg.Go(func() { _ = x.Run(ctx) })
	}
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < vmHosts; i++ {
		for !agentBeat(ctx, e, benchHost(i)) {
			if time.Now().After(deadline) {
				a.close()
				b.Fatalf("the agent of %s did not report within 20s", benchHost(i))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return a
}

// close stops the executors and closes their engine.
func (a *agents) close() {
	a.stop()
	a.wg.Wait()
	_ = a.e.Close()
}

// agentBeat reports whether node's agent has recorded its heartbeat (the
// key of nodeWorkAgentKey, internal/engine/keys.go): from then on the
// provider sends it the node's work (engine.Engine.workTarget).
func agentBeat(ctx context.Context, e *engine.Engine, node string) bool {
	_, err := e.Store().Get(ctx, "node-work-agents/"+node)
	return err == nil
}
