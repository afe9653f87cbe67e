package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/testcli"
)

// The lifecycle benchmark times plan, apply and destroy of 17 resources in
// three forms, interleaved round by round (a, b, c, a, b, c, ...) so that
// machine noise hits all three alike:
//
//	terraform_data: 17 terraform_data resources (the CLI alone, no plugin)
//	noop:           17 noop_thing resources of bench/noop (the CLI plus a plugin
//	                built with the same framework, doing nothing)
//	kayo:           16 kayo_host + 1 kayo_cluster of all 16 (a fresh data_dir
//	                every round)
//
// Each round: `plan -out`, `apply` of that plan, `destroy -auto-approve`;
// `init` happens once, untimed. The CLI is bin/terraform, or bin/tofu with
// BENCH_CLI=tofu. Per-phase means go out as metrics (ms) with the ratios
// kayo/terraform_data and kayo/noop, and a table is printed at the end.
// BENCH_SCENARIOS=terraform_data,noop leaves kayo out (the floors always run).
//
//	go test -run '^$' -bench Lifecycle -benchtime=5x ./bench/...

const resources = 17

var phaseNames = [...]string{"plan", "apply", "destroy"}

type scenario struct {
	name   string
	wd     *testcli.Workdir
	config func(round int) string
	// times[phase] holds one duration per round.
	times [3][]time.Duration
}

func (s *scenario) total(round int) time.Duration {
	return s.times[0][round] + s.times[1][round] + s.times[2][round]
}

func BenchmarkLifecycle(b *testing.B) {
	ctx := context.Background()
	cliName := os.Getenv("BENCH_CLI")
	if cliName == "" {
		cliName = "terraform"
	}
	cli := testcli.NamedCLI(b, cliName)

	providers := []testcli.Provider{{Source: "local/bench/noop", Version: "0.1.0", Binary: testcli.Build(b, "./bench/noop")}}
	haveKayo := testcli.HaveProviderSource() && wanted("kayo")
	if haveKayo {
		providers = append(providers, testcli.KayoProvider(b))
	} else {
		b.Log("kayo scenario off (no main.go yet, or BENCH_SCENARIOS leaves it out): timing the two floors only")
	}
	mirror := testcli.NewMirror(b, providers...)
	base := b.TempDir()

	scenarios := []*scenario{
		{name: "terraform_data", config: func(int) string { return terraformDataConfig() }},
		{name: "noop", config: func(int) string { return noopConfig() }},
	}
	if haveKayo {
		scenarios = append(scenarios, &scenario{name: "kayo", config: func(round int) string {
			return kayoConfig(filepath.Join(base, "kayo-data", fmt.Sprint(round)))
		}})
	}
	for _, s := range scenarios {
		dir := filepath.Join(base, s.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		s.wd = testcli.NewWorkdir(cli, dir, mirror)
		if err := s.wd.WriteFile("main.tf", s.config(0)); err != nil {
			b.Fatal(err)
		}
		testcli.Must(b, s.wd.Init(ctx))
	}

	round := 0
	for b.Loop() {
		for _, s := range scenarios {
			b.StopTimer()
			if err := s.wd.WriteFile("main.tf", s.config(round)); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			steps := [3][]string{
				{"plan", "-out=bench.tfplan", "-input=false", "-no-color"},
				{"apply", "-input=false", "-no-color", "bench.tfplan"},
				{"destroy", "-auto-approve", "-input=false", "-no-color"},
			}
			for p, args := range steps {
				r := testcli.Must(b, s.wd.Run(ctx, args...))
				s.times[p] = append(s.times[p], r.Duration)
			}
		}
		round++
	}
	if round == 0 {
		return
	}

	mean := func(ds []time.Duration) float64 {
		var sum time.Duration
		for _, d := range ds {
			sum += d
		}
		return float64(sum) / float64(len(ds)) / float64(time.Millisecond)
	}
	totals := func(s *scenario) []time.Duration {
		out := make([]time.Duration, round)
		for i := range out {
			out[i] = s.total(i)
		}
		return out
	}
	short := map[string]string{"terraform_data": "tfdata", "noop": "noop", "kayo": "kayo"}
	for _, s := range scenarios {
		for p, name := range phaseNames {
			b.ReportMetric(mean(s.times[p]), short[s.name]+"-"+name+"-ms")
		}
		b.ReportMetric(mean(totals(s)), short[s.name]+"-total-ms")
	}
	if haveKayo {
		k := scenarios[2]
		b.ReportMetric(mean(totals(k))/mean(totals(scenarios[0])), "kayo/tfdata")
		b.ReportMetric(mean(totals(k))/mean(totals(scenarios[1])), "kayo/noop")
		b.ReportMetric(median(totals(k))/median(totals(scenarios[0])), "kayo/tfdata-median")
		b.ReportMetric(median(totals(k))/median(totals(scenarios[1])), "kayo/noop-median")
	}

	// The table, for people.
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nLifecycle of %d resources with %s (%s), %d rounds, interleaved; mean (median) ms; ratios of means (of medians)\n",
		resources, cli.Name, cli.Path, round)
	fmt.Fprintf(&sb, "%-20s %16s %16s %16s %16s\n", "scenario", "plan", "apply", "destroy", "total")
	for _, s := range scenarios {
		fmt.Fprintf(&sb, "%-20s", s.name)
		for p := range phaseNames {
			fmt.Fprintf(&sb, " %16s", cell(mean(s.times[p]), median(s.times[p])))
		}
		fmt.Fprintf(&sb, " %16s\n", cell(mean(totals(s)), median(totals(s))))
	}
	if haveKayo {
		k := scenarios[2]
		for _, floor := range scenarios[:2] {
			fmt.Fprintf(&sb, "%-20s", "kayo/"+floor.name)
			for p := range phaseNames {
				fmt.Fprintf(&sb, " %16s", ratio(mean(k.times[p])/mean(floor.times[p]), median(k.times[p])/median(floor.times[p])))
			}
			fmt.Fprintf(&sb, " %16s\n", ratio(mean(totals(k))/mean(totals(floor)), median(totals(k))/median(totals(floor))))
		}
	}
	fmt.Print(sb.String())
}

// wanted reports whether BENCH_SCENARIOS (comma-separated; empty = all)
// names scenario.
func wanted(scenario string) bool {
	list := os.Getenv("BENCH_SCENARIOS")
	if list == "" {
		return true
	}
	for _, s := range strings.Split(list, ",") {
		if strings.TrimSpace(s) == scenario {
			return true
		}
	}
	return false
}

func ratio(mean, median float64) string {
	return fmt.Sprintf("%.2fx (%.2fx)", mean, median)
}

func cell(mean, median float64) string {
	return fmt.Sprintf("%.0f (%.0f)", mean, median)
}

func median(ds []time.Duration) float64 {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return float64(m) / float64(time.Millisecond)
}

func terraformDataConfig() string {
	var sb strings.Builder
	for i := 1; i <= resources; i++ {
		fmt.Fprintf(&sb, `resource "terraform_data" "r%02d" {
  input = {
    name      = "thing-%02d"
    address   = "192.0.2.%d"
    edition   = "enterprise"
    model     = "Xeon E5440"
    cores     = 8
    memory_mb = 32768
  }
}
`, i, i, 100+i)
	}
	return sb.String()
}

func noopConfig() string {
	var sb strings.Builder
	sb.WriteString(`terraform {
  required_providers {
    noop = { source = "local/bench/noop" }
  }
}
`)
	for i := 1; i <= resources; i++ {
		fmt.Fprintf(&sb, `resource "noop_thing" "r%02d" {
  name      = "thing-%02d"
  address   = "192.0.2.%d"
  edition   = "enterprise"
  model     = "Xeon E5440"
  cores     = 8
  memory_mb = 32768
}
`, i, i, 100+i)
	}
	return sb.String()
}

// kayoConfig is 16 identical hosts and a cluster of all of them.
func kayoConfig(dataDir string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, `terraform {
  required_providers {
    kayo = { source = %q }
  }
}

provider "kayo" {
  data_dir     = %q
  lock_timeout = "30s"
}
`, testcli.KayoSource, dataDir)
	var nodes []string
	for i := 1; i <= resources-1; i++ {
		fmt.Fprintf(&sb, `resource "kayo_host" "h%02d" {
  name             = "BENCH-%02d"
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
`, i, i, 100+i, 100+i, 100+i)
		nodes = append(nodes, fmt.Sprintf("kayo_host.h%02d.name", i))
	}
	fmt.Fprintf(&sb, `resource "kayo_cluster" "c" {
  name           = "BENCHCLUSTER"
  nodes          = [%s]
  static_address = "192.0.2.50/24"
}
`, strings.Join(nodes, ", "))
	return sb.String()
}
