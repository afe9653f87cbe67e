package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/etcdtest"
	"github.com/kayo-labs/terraform-provider-kayo/internal/nodeagent/workexec"
)

// kayoctl reads the cluster database from etcd when told to, by flag or by
// the same KAYO_ETCD_* variables as the provider.
func TestStatusOnEtcd(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	eps := strings.Join(c.Endpoints(), ",")
	e, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: t.TempDir(), Etcd: &store.EtcdOptions{Endpoints: c.Endpoints(), Prefix: "/ctl/"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, n := range threeNodes {
		if _, err := e.CreateHost(ctx, hostSpec(n, 21+i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.CreateCluster(ctx, engine.ClusterSpec{Name: "ETCDCLUSTER", Nodes: threeNodes,
		StaticAddress: "192.0.2.50/24", Hypervisor: engine.HypervisorSimulator, HeartbeatTimeoutSeconds: 10}); err != nil {
		t.Fatal(err)
	}
	e.Close()
	dir := t.TempDir()
	env := map[string]string{store.EnvEtcdPrefix: "/ctl/"}
	code, out, errOut := kayoctl(t, env, "--data-dir", dir, "--etcd-endpoints", eps, "status")
	if code != exitOK || !strings.Contains(out, "ETCDCLUSTER") {
		t.Fatalf("status by flag: exit %d\n%s%s", code, out, errOut)
	}
	env[store.EnvEtcdEndpoints] = eps
	code, out, errOut = kayoctl(t, env, "--data-dir", dir, "status")
	if code != exitOK || !strings.Contains(out, "ETCDCLUSTER") {
		t.Fatalf("status by environment: exit %d\n%s%s", code, out, errOut)
	}
	// On etcd, backup saves an etcd snapshot; restore points to etcd's tools.
	snap := filepath.Join(t.TempDir(), "etcd.snapshot")
	code, out, errOut = kayoctl(t, env, "--data-dir", dir, "backup", snap)
	if code != exitOK || !strings.Contains(out, "etcd snapshot written to "+snap) {
		t.Fatalf("backup on etcd: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = kayoctl(t, env, "--data-dir", dir, "restore", snap)
	if code != exitError || !strings.Contains(errOut, "etcdutl snapshot restore") {
		t.Fatalf("restore on etcd: exit %d: %s", code, errOut)
	}
	code, _, errOut = kayoctl(t, nil, "--data-dir", dir, "--etcd-endpoints", "localhost:2379", "status")
	if code != exitError || !strings.Contains(errOut, `--etcd-endpoints: endpoint "localhost:2379" is not an etcd client URL`) {
		t.Fatalf("bad endpoint: exit %d: %s", code, errOut)
	}
}
