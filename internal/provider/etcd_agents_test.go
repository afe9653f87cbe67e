package provider

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/nodeagent/workexec"
)

// With the cluster database on etcd the provider does no node's
// data-plane work (internal/engine/nodework.go): the nodes' agents do.
// When the whole suite runs on etcd (make acc-etcd), each test's data dir
// gets a pool of agents in the test process: one work executor per host
// its database holds, started as hosts appear and stopped as they go; a
// pool ends when its database has no host left after having had some,
// and every pool ends with the test binary (TestMain).

// etcdAgentPools: data dir → *etcdAgentPool, for the test binary.
type etcdAgentPools struct {
	mu    sync.Mutex
	pools map[string]*etcdAgentPool
	wg    sync.WaitGroup
	ctx   context.Context
	stop  context.CancelFunc
}

type etcdAgentPool struct {
	e     *engine.Engine
	execs map[string]context.CancelFunc
}

var testAgentPools = func() *etcdAgentPools {
	ctx, stop := context.WithCancel(context.Background())
	return &etcdAgentPools{pools: map[string]*etcdAgentPool{}, ctx: ctx, stop: stop}
}()

func TestMain(m *testing.M) {
	code := m.Run()
	testAgentPools.stop()
	testAgentPools.wg.Wait()
	os.Exit(code)
}

// ensure starts the pool of dataDir's database on etcd once.
func (p *etcdAgentPools) ensure(dataDir string, cfg engine.Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.pools[dataDir]; ok {
		return
	}
	e, err := engine.Open(cfg)
	if err != nil {
		return // the test's own provider reports the database's error
	}
	pool := &etcdAgentPool{e: e, execs: map[string]context.CancelFunc{}}
	p.pools[dataDir] = pool
	p.wg.Go(func() { pool.run(p.ctx) })
}

func (pool *etcdAgentPool) run(ctx context.Context) {
	defer pool.e.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	hadHosts := false
	// Reports every 10th tick: 500 ms, a real agent's interval.
	const reportEvery = 10
	ticks := 0
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		hosts, err := pool.e.ListHosts(ctx)
		if err == nil {
			seen := map[string]bool{}
			for _, h := range hosts {
				seen[h.Name] = true
				if pool.execs[h.Name] != nil {
					continue
				}
				xctx, cancel := context.WithCancel(ctx)
				pool.execs[h.Name] = cancel
				x := workexec.New(pool.e, workexec.Config{Node: h.Name})
				wg.Go(func() { _ = x.Run(xctx) })
			}
			for n, cancel := range pool.execs {
				if !seen[n] {
					cancel()
					delete(pool.execs, n)
				}
			}
			// What each node sees of its volumes' LUNs, as an agent
			// reports on every tick of its interval (Agent.Tick).
			if ticks++; ticks%reportEvery == 0 {
				for n := range seen {
					_ = pool.e.ReportNodeVolumes(ctx, n, "test-agent/"+n)
				}
			}
			if len(hosts) > 0 {
				hadHosts = true
			} else if hadHosts {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// waitVolumeLost waits until a node reported volume ref's LUN lost: on
// etcd the agents report (every tick of the pool); on the embedded
// database the provider reports the lab's LUNs as it starts.
func waitVolumeLost(t *testing.T, dataDir, ref string) {
	t.Helper()
	if len(store.SplitEndpoints(os.Getenv(envTestEtcd))) == 0 {
		return
	}
	withTestVolume(t, dataDir, ref, func(ctx context.Context, e *engine.Engine, v engine.Volume) {
		deadline := time.Now().Add(20 * time.Second)
		for {
			if why, err := e.VolumeLost(ctx, v.ID); err == nil && why != "" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no agent reported volume %s's LUN lost", ref)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// ensureEtcdAgents starts the agent pool of a test's data dir when the
// suite runs on etcd.
func ensureEtcdAgents(dataDir string) {
	eps := store.SplitEndpoints(os.Getenv(envTestEtcd))
	if len(eps) == 0 {
		return
	}
	testAgentPools.ensure(dataDir, engine.Config{DataDir: dataDir,
		Etcd: &store.EtcdOptions{Endpoints: eps, Prefix: testEtcdPrefix(dataDir)}})
}

// waitEtcdAgents starts the agent pool of dataDir's database when the suite
// runs on etcd, and waits until every host's agent is up: a test's own
// setup (labDo) may create VMs, whose files the agents write.
func waitEtcdAgents(t *testing.T, dataDir string) {
	t.Helper()
	if len(store.SplitEndpoints(os.Getenv(envTestEtcd))) == 0 {
		return
	}
	ensureEtcdAgents(dataDir)
	e, err := engine.Open(testEngine(dataDir))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	hosts, err := e.ListHosts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts {
		deadline := time.Now().Add(20 * time.Second)
		for {
			err := e.WorkReady(ctx, h.Name)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the test agent of %s did not come up: %v", h.Name, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
