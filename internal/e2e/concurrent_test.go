package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/testcli"
)

const hostsPerConfig = 8

// providerBlock points at one shared data_dir.
func providerBlock(dataDir, lockTimeout string) string {
	return fmt.Sprintf(`terraform {
  required_providers {
    kayo = { source = %q }
  }
}

provider "kayo" {
  data_dir     = %q
  lock_timeout = %q
}
`, testcli.KayoSource, dataDir, lockTimeout)
}

// hostBlock is one valid host; index picks its name and addresses.
func hostBlock(label, name string, index int) string {
	return fmt.Sprintf(`resource "kayo_host" %q {
  name             = %q
  address          = "192.0.2.%d"
  os_edition       = "enterprise"
  processor_vendor = "intel"
  processor_model  = "Xeon E5440"
  processor_cores  = 8
  memory_mb        = 32768
  features         = ["Hyper-V", "Failover-Clustering"]
  network_adapters = [
    { name = "Public", network = "192.0.2.0/24", address = "192.0.2.%d" },
    { name = "Heartbeat", network = "10.10.10.0/24", address = "10.10.10.%d" },
  ]
}
`, label, name, index, index, index)
}

// hostsConfig is hostsPerConfig hosts named PREFIX-01.., at addresses from
// first on.
func hostsConfig(dataDir, prefix string, first int) (string, []string) {
	var sb strings.Builder
	sb.WriteString(providerBlock(dataDir, "60s"))
	var names []string
	for i := 0; i < hostsPerConfig; i++ {
		name := fmt.Sprintf("%s-%02d", prefix, i+1)
		sb.WriteString(hostBlock(fmt.Sprintf("h%02d", i+1), name, first+i))
		names = append(names, name)
	}
	return sb.String(), names
}

// listConfig reads every host of the data dir through the data source.
func listConfig(dataDir string) string {
	return providerBlock(dataDir, "60s") + `
data "kayo_hosts" "all" {}

output "names" {
  value = sort([for h in data.kayo_hosts.all.hosts : h.name])
}
`
}

func newWorkdir(t *testing.T, cli testcli.CLI, m *testcli.Mirror, name, config string) *testcli.Workdir {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	wd := testcli.NewWorkdir(cli, dir, m)
	if err := wd.WriteFile("main.tf", config); err != nil {
		t.Fatal(err)
	}
	return wd
}

// atOnce runs fn for every work dir, all released at the same instant.
func atOnce(wds []*testcli.Workdir, fn func(*testcli.Workdir) testcli.Result) []testcli.Result {
	results := make([]testcli.Result, len(wds))
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for i, wd := range wds {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			results[i] = fn(wd)
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	return results
}

func stateNames(t *testing.T, ctx context.Context, wd *testcli.Workdir) []string {
	t.Helper()
	r := testcli.Must(t, wd.ShowJSON(ctx))
	res, err := testcli.ParseState(r.Stdout)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, x := range res {
		if x.Mode == "managed" && x.Type == "kayo_host" {
			names = append(names, fmt.Sprint(x.Values["name"]))
		}
	}
	sort.Strings(names)
	return names
}

func listedHosts(t *testing.T, ctx context.Context, wd *testcli.Workdir) []string {
	t.Helper()
	testcli.Must(t, wd.Apply(ctx))
	r := testcli.Must(t, wd.OutputJSON(ctx, "names"))
	var names []string
	if err := json.Unmarshal([]byte(r.Stdout), &names); err != nil {
		t.Fatalf("output names: %v: %s", err, r.Stdout)
	}
	return names
}

// TestConcurrentApply: two `apply` runs started at the same moment on one
// data_dir, each creating its own hosts, both succeed and lose nothing; the
// plans after them are empty; two simultaneous destroys succeed too.
func TestConcurrentApply(t *testing.T) {
	for _, cli := range testcli.CLIs(t) {
		t.Run(cli.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			mirror := testcli.NewMirror(t, testcli.KayoProvider(t))
			dataDir := t.TempDir()

			cfgA, namesA := hostsConfig(dataDir, "CONC-A", 101)
			cfgB, namesB := hostsConfig(dataDir, "CONC-B", 121)
			a := newWorkdir(t, cli, mirror, "a", cfgA)
			b := newWorkdir(t, cli, mirror, "b", cfgB)
			list := newWorkdir(t, cli, mirror, "list", listConfig(dataDir))
			for _, wd := range []*testcli.Workdir{a, b, list} {
				testcli.Must(t, wd.Init(ctx))
			}

			results := atOnce([]*testcli.Workdir{a, b}, func(wd *testcli.Workdir) testcli.Result {
				return wd.Apply(ctx)
			})
			for i, r := range results {
				if r.Err != nil {
					t.Fatalf("apply %d of 2 failed: %v", i+1, r.Err)
				}
				t.Logf("apply %d of 2: exit 0 in %s", i+1, r.Duration.Round(time.Millisecond))
			}

			want := append(append([]string(nil), namesA...), namesB...)
			sort.Strings(want)
			if got := append(stateNames(t, ctx, a), stateNames(t, ctx, b)...); !equalSorted(got, want) {
				t.Fatalf("hosts in the two states:\n got %v\nwant %v", got, want)
			}
			if got := listedHosts(t, ctx, list); !equalSorted(got, want) {
				t.Fatalf("hosts in the cluster database (data.kayo_hosts):\n got %v\nwant %v", got, want)
			}

			for i, wd := range []*testcli.Workdir{a, b} {
				changes, r := wd.Plan(ctx)
				testcli.Must(t, r)
				if changes {
					t.Fatalf("second plan of config %d is not empty:\n%s", i+1, r.Stdout)
				}
			}

			results = atOnce([]*testcli.Workdir{a, b}, func(wd *testcli.Workdir) testcli.Result {
				return wd.Destroy(ctx)
			})
			for i, r := range results {
				if r.Err != nil {
					t.Fatalf("destroy %d of 2 failed: %v", i+1, r.Err)
				}
			}
			if got := listedHosts(t, ctx, list); len(got) != 0 {
				t.Fatalf("hosts left after both destroys: %v", got)
			}
		})
	}
}

func equalSorted(a, b []string) bool {
	a = append([]string(nil), a...)
	sort.Strings(a)
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
