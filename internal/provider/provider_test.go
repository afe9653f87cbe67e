package provider

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/nodeagent/workexec"
)

// protoV6 serves the provider in-process to the CLI under test
// (TF_ACC_TERRAFORM_PATH picks Terraform or OpenTofu).
var protoV6 = map[string]func() (tfprotov6.ProviderServer, error){
	"kayo": providerserver.NewProtocol6WithError(NewWithRuntime("test", testRuntime)()),
}

// testRuntime is the runtime of the provider under test (its cached
// volume mounts).
var testRuntime = engine.NewRuntime()

// providerBlock points the provider at a data dir of the test's own.
// With KAYO_TEST_ETCD_ENDPOINTS set (make acc-etcd) the whole suite runs
// on etcd: each test's cluster database lives under a key prefix of its
// own, derived from its data dir, so tests in parallel never meet.
func providerBlock(dataDir string) string {
	eps := store.SplitEndpoints(os.Getenv(envTestEtcd))
	if len(eps) == 0 {
		return plainProviderBlock(dataDir)
	}
	ensureEtcdAgents(dataDir) // the nodes' agents do their work (etcd_agents_test.go)
	return fmt.Sprintf("provider \"kayo\" {\n  data_dir = %q\n  etcd {\n    endpoints = [%s]\n    prefix = %q\n  }\n}\n",
		dataDir, quoteList(eps), testEtcdPrefix(dataDir))
}

// plainProviderBlock names only the data dir, for tests that configure
// the store through the environment themselves.
func plainProviderBlock(dataDir string) string {
	return fmt.Sprintf("provider \"kayo\" {\n  data_dir = %q\n}\n", dataDir)
}

// envTestEtcd names the etcd endpoints the acceptance suite runs on.
const envTestEtcd = "KAYO_TEST_ETCD_ENDPOINTS"

func testEtcdPrefix(dataDir string) string {
	return "/kayo-acc/" + strings.ReplaceAll(strings.TrimPrefix(dataDir, os.TempDir()), "/", "_") + "/"
}

// testEngine is the engine configuration a test's provider block names.
func testEngine(dataDir string) engine.Config {
	cfg := engine.Config{DataDir: dataDir, LocalExecutor: workexec.Local}
	if eps := store.SplitEndpoints(os.Getenv(envTestEtcd)); len(eps) > 0 {
		cfg.Etcd = &store.EtcdOptions{Endpoints: eps, Prefix: testEtcdPrefix(dataDir)}
	}
	return cfg
}

// hostOpts describes one kayo_host in test configurations.
type hostOpts struct {
	res, name, edition, vendor string
	octet, memory, cores       int
	features                   []string
	adapters                   int // 1 or 2
	maintenance                bool
}

// seedHost is a host like the seed's: enterprise, Intel, two adapters.
func seedHost(res, name string, octet int) hostOpts {
	return hostOpts{res: res, name: name, edition: "enterprise", vendor: "intel", octet: octet,
		memory: 32768, cores: 8, features: []string{"Hyper-V", "Failover-Clustering"}, adapters: 2}
}

func (h hostOpts) hcl() string {
	var b strings.Builder
	fmt.Fprintf(&b, "resource \"kayo_host\" %q {\n", h.res)
	fmt.Fprintf(&b, "  name = %q\n  address = \"192.0.2.%d\"\n  os_edition = %q\n", h.name, h.octet, h.edition)
	fmt.Fprintf(&b, "  processor_vendor = %q\n  processor_model = \"Xeon E5440\"\n  processor_cores = %d\n  memory_mb = %d\n",
		h.vendor, h.cores, h.memory)
	fmt.Fprintf(&b, "  features = [%s]\n", quoteList(h.features))
	b.WriteString("  network_adapters = [\n")
	fmt.Fprintf(&b, "    { name = \"Public\", network = \"192.0.2.0/24\", address = \"192.0.2.%d\" },\n", h.octet)
	if h.adapters > 1 {
		fmt.Fprintf(&b, "    { name = \"Heartbeat\", network = \"10.10.10.0/24\", address = \"10.10.10.%d\" },\n", h.octet)
	}
	b.WriteString("  ]\n")
	if h.maintenance {
		b.WriteString("  maintenance = true\n")
	}
	b.WriteString("}\n")
	return b.String()
}

func quoteList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = fmt.Sprintf("%q", x)
	}
	return strings.Join(q, ", ")
}

// clusterHCL is a kayo_cluster over the given host resources.
func clusterHCL(name, static string, hostRes ...string) string {
	nodes := make([]string, len(hostRes))
	for i, r := range hostRes {
		nodes[i] = "kayo_host." + r + ".name"
	}
	return fmt.Sprintf("resource \"kayo_cluster\" \"c\" {\n  name = %q\n  nodes = [%s]\n  static_address = %q\n}\n",
		name, strings.Join(nodes, ", "), static)
}

// dbCheck opens the test's data dir directly, as kayoctl would, and runs fn.
func dbCheck(dataDir string, fn func(context.Context, *engine.Engine) error) func(*terraform.State) error {
	return func(*terraform.State) error {
		e, err := engine.Open(testEngine(dataDir))
		if err != nil {
			return err
		}
		defer e.Close()
		return fn(context.Background(), e)
	}
}

// noClusters asserts that the database holds no cluster.
func noClusters(dataDir string) func(*terraform.State) error {
	return dbCheck(dataDir, func(ctx context.Context, e *engine.Engine) error {
		cs, err := e.ListClusters(ctx)
		if err != nil {
			return err
		}
		if len(cs) != 0 {
			return fmt.Errorf("expected no cluster in the database, found %d (%s)", len(cs), cs[0].Name)
		}
		return nil
	})
}

func TestProviderSchemaValid(t *testing.T) {
	resp, err := providerserver.NewProtocol6WithError(New("test")())()
	if err != nil {
		t.Fatal(err)
	}
	schema, err := resp.GetProviderSchema(context.Background(), &tfprotov6.GetProviderSchemaRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range schema.Diagnostics {
		t.Errorf("schema diagnostic: %s: %s", d.Summary, d.Detail)
	}
	for _, want := range []string{"kayo_host", "kayo_cluster"} {
		if _, ok := schema.ResourceSchemas[want]; !ok {
			t.Errorf("resource %s missing from the schema", want)
		}
	}
	for _, want := range []string{"kayo_hosts", "kayo_cluster"} {
		if _, ok := schema.DataSourceSchemas[want]; !ok {
			t.Errorf("data source %s missing from the schema", want)
		}
	}
}

// errRe matches msg in CLI output, where long lines wrap at any space.
func errRe(msg string) *regexp.Regexp {
	parts := strings.Fields(msg)
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile(strings.Join(parts, `\s+`))
}
