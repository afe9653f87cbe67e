package provider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/etcdtest"
	"github.com/kayo-labs/terraform-provider-kayo/internal/nodeagent/workexec"
)

// etcdProviderBlock points the provider at etcd (the data dir keeps only
// the embedded SAN).
func etcdProviderBlock(dataDir string, endpoints []string, prefix string) string {
	q := make([]string, len(endpoints))
	for i, ep := range endpoints {
		q[i] = fmt.Sprintf("%q", ep)
	}
	return fmt.Sprintf("provider \"kayo\" {\n  data_dir = %q\n  etcd {\n    endpoints = [%s]\n    prefix = %q\n    dial_timeout = \"3s\"\n  }\n}\n",
		dataDir, strings.Join(q, ", "), prefix)
}

// etcdCheck runs fn on an engine of the installation at prefix.
func etcdCheck(endpoints []string, prefix string, fn func(context.Context, *engine.Engine) error) func(*terraform.State) error {
	return func(*terraform.State) error {
		e, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: os.TempDir(), Etcd: &store.EtcdOptions{Endpoints: endpoints, Prefix: prefix}})
		if err != nil {
			return err
		}
		defer e.Close()
		return fn(context.Background(), e)
	}
}

// startEtcdAgents runs, in the test process, the node agents' work
// executors of nodes on the etcd database (with dataDir, where the
// embedded SAN's LUN images are): with the database on etcd the provider
// does no node's data-plane work itself. They stop when the test ends.
func startEtcdAgents(t *testing.T, endpoints []string, prefix, dataDir string, nodes ...string) {
	t.Helper()
	e, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: dataDir, Etcd: &store.EtcdOptions{Endpoints: endpoints, Prefix: prefix}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, n := range nodes {
		x := workexec.New(e, workexec.Config{Node: n, Logf: t.Logf})
		wg.Go(func() { _ = x.Run(ctx) })
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		_ = e.Close()
	})
}

// requireAcc skips before starting etcd when acceptance tests do not run.
func requireAcc(t *testing.T) {
	t.Helper()
	if os.Getenv(resource.EnvTfAcc) == "" {
		t.Skipf("acceptance tests skipped unless env %s is set", resource.EnvTfAcc)
	}
}

// The host and cluster lifecycle with the cluster database on etcd.
func TestAccEtcd_lifecycle(t *testing.T) {
	requireAcc(t)
	c := etcdtest.Start(t, etcdtest.Options{})
	dir := t.TempDir()
	const prefix = "/kayo-acc/"
	eps := c.Endpoints()
	cfg := func(hosts ...string) string {
		return etcdProviderBlock(dir, eps, prefix) + seedHosts() + clusterHCL("HVCLUSTER", "192.0.2.50/24", hosts...)
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{
				Config: cfg("y21", "y22"),
				Check: resource.ComposeTestCheckFunc(
					checkValidation("kayo_cluster.c", nil),
					etcdCheck(eps, prefix, func(ctx context.Context, e *engine.Engine) error {
						cl, err := e.GetCluster(ctx, "HVCLUSTER")
						if err != nil {
							return err
						}
						if len(cl.Nodes) != 2 {
							return fmt.Errorf("cluster in etcd has nodes %v", cl.Nodes)
						}
						if _, err := os.Stat(filepath.Join(dir, engine.DatabaseFile)); !errors.Is(err, os.ErrNotExist) {
							return fmt.Errorf("the embedded database was created in data_dir (%v): etcd not used", err)
						}
						return nil
					}),
				),
			},
			{
				Config: cfg("y21", "y22", "y23"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("kayo_cluster.c", plancheck.ResourceActionUpdate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("kayo_cluster.c", tfjsonpath.New("nodes"), knownvalue.SetSizeExact(3)),
				},
				Check: etcdCheck(eps, prefix, func(ctx context.Context, e *engine.Engine) error {
					h, err := e.GetHost(ctx, "Y-23-2k8x64")
					if err != nil {
						return err
					}
					if h.Cluster != "HVCLUSTER" {
						return fmt.Errorf("Y-23-2k8x64 is in cluster %q in etcd, want HVCLUSTER", h.Cluster)
					}
					return nil
				}),
			},
			{
				ResourceName:      "kayo_cluster.c",
				ImportState:       true,
				ImportStateId:     "HVCLUSTER",
				ImportStateVerify: true,
			},
		},
		CheckDestroy: etcdCheck(eps, prefix, func(ctx context.Context, e *engine.Engine) error {
			hosts, err := e.ListHosts(ctx)
			if err != nil {
				return err
			}
			if len(hosts) != 0 {
				return fmt.Errorf("%d hosts left in etcd after destroy", len(hosts))
			}
			return nil
		}),
	})
}

// TLS, a client certificate and a password, all from KAYO_ETCD_* variables.
func TestAccEtcd_tlsAuthFromEnv(t *testing.T) {
	requireAcc(t)
	certs := etcdtest.GenerateCerts(t)
	c := etcdtest.Start(t, etcdtest.Options{TLS: &etcdtest.TLS{
		CAFile: certs.CAFile, CertFile: certs.ServerCertFile, KeyFile: certs.ServerKey, ClientCertAuth: true}})
	const prefix = "/kayo-tls/"
	if err := etcdtest.EnableAuth(context.Background(), c.Client(t, certs.ClientCertFile, certs.ClientKey),
		"rootpw", "kayo", "s3cret", prefix); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		EnvEtcdEndpoints: strings.Join(c.Endpoints(), ","), store.EnvEtcdPrefix: prefix,
		store.EnvEtcdUsername: "kayo", store.EnvEtcdPassword: "s3cret", store.EnvEtcdCAFile: certs.CAFile,
		store.EnvEtcdCertFile: certs.ClientCertFile, store.EnvEtcdKeyFile: certs.ClientKey, EnvEtcdDialTimeout: "3s",
	} {
		t.Setenv(k, v)
	}
	dir := t.TempDir()
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{{
			Config: plainProviderBlock(dir) + seedHost("y21", "Y-21-2k8x64", 21).hcl(),
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("kayo_host.y21", tfjsonpath.New("id"), knownvalue.StringExact("Y-21-2k8x64")),
			},
			Check: func(*terraform.State) error {
				if _, err := os.Stat(filepath.Join(dir, engine.DatabaseFile)); !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("the embedded database was used: %v", err)
				}
				// This client authenticates by its certificate's CN, "kayo".
				resp, err := c.Client(t, certs.ClientCertFile, certs.ClientKey).Get(context.Background(), prefix+"hosts/Y-21-2k8x64")
				if err == nil && len(resp.Kvs) == 0 {
					err = errors.New("host record not in etcd")
				}
				return err
			},
		}},
	})
}

// An etcd nobody listens on fails at configure time, naming the endpoint
// and the cause, within the dial timeout.
func TestAccEtcd_unreachable(t *testing.T) {
	requireAcc(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ep := "http://" + l.Addr().String()
	_ = l.Close()
	cfg := fmt.Sprintf("provider \"kayo\" {\n  data_dir = %q\n  etcd {\n    endpoints = [%q]\n    dial_timeout = \"1s\"\n  }\n}\n",
		t.TempDir(), ep) + seedHost("y21", "Y-21-2k8x64", 21).hcl()
	// Time the test itself, not the wait of a parallel test for its turn.
	t.Parallel()
	start := time.Now()
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{{
			Config:      cfg,
			ExpectError: regexp.MustCompile(`(?s)Cannot reach the cluster database on etcd.*` + regexp.QuoteMeta(l.Addr().String()) + `.*connection\s+refused`),
		}},
	})
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("an unreachable etcd took %s to report", d)
	}
}

// The block's attributes win over KAYO_ETCD_* variables; no endpoints
// anywhere means the embedded database.
func TestEtcdOptionsFromEnv(t *testing.T) {
	ctx := context.Background()
	for _, k := range []string{EnvEtcdEndpoints, store.EnvEtcdPrefix, store.EnvEtcdUsername, store.EnvEtcdPassword,
		store.EnvEtcdCAFile, store.EnvEtcdCertFile, store.EnvEtcdKeyFile, EnvEtcdDialTimeout} {
		t.Setenv(k, "")
	}
	var diags diag.Diagnostics
	if o, _, ok := etcdOptions(ctx, nil, &diags); !ok || o != nil {
		t.Fatalf("no etcd configured: %+v, %v", o, diags)
	}
	t.Setenv(EnvEtcdEndpoints, " http://a:2379, http://b:2379 ,")
	t.Setenv(store.EnvEtcdPrefix, "/env/")
	t.Setenv(store.EnvEtcdPassword, "pw")
	t.Setenv(EnvEtcdDialTimeout, "2s")
	o, _, ok := etcdOptions(ctx, nil, &diags)
	if !ok || o == nil || strings.Join(o.Endpoints, " ") != "http://a:2379 http://b:2379" || o.Prefix != "/env/" ||
		o.Password != "pw" || o.DialTimeout != 2*time.Second {
		t.Fatalf("from env: %+v, %v", o, diags)
	}
	eps, _ := types.ListValueFrom(ctx, types.StringType, []string{"https://c:2379"})
	m := &etcdModel{Endpoints: eps, Prefix: types.StringValue("/block/"), Username: types.StringNull(),
		Password: types.StringNull(), CAFile: types.StringValue("/ca.pem"), CertFile: types.StringNull(),
		KeyFile: types.StringNull(), DialTimeout: types.StringValue("750ms")}
	o, _, ok = etcdOptions(ctx, m, &diags)
	if !ok || strings.Join(o.Endpoints, " ") != "https://c:2379" || o.Prefix != "/block/" || o.Password != "pw" ||
		o.CAFile != "/ca.pem" || o.DialTimeout != 750*time.Millisecond {
		t.Fatalf("block over env: %+v, %v", o, diags)
	}
	t.Setenv(EnvEtcdDialTimeout, "soon")
	m.DialTimeout = types.StringNull()
	if _, _, ok := etcdOptions(ctx, m, &diags); ok || !strings.Contains(fmt.Sprint(diags), EnvEtcdDialTimeout) {
		t.Fatalf("bad dial timeout from env: ok=%v %v", ok, diags)
	}
	diags = nil
	bad, _ := types.ListValueFrom(ctx, types.StringType, []string{"etcd1:2379"})
	m.Endpoints = bad
	t.Setenv(EnvEtcdDialTimeout, "")
	if _, _, ok := etcdOptions(ctx, m, &diags); ok || !strings.Contains(fmt.Sprint(diags), "etcd1:2379") {
		t.Fatalf("endpoint without scheme: ok=%v %v", ok, diags)
	}
}
