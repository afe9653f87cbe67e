package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/etcdtest"
	"github.com/kayo-labs/terraform-provider-kayo/internal/testcli"
)

// The VM benchmark times three phases of 200 resources, interleaved round
// by round with its floors:
//
//	create:  plan -out + apply of 200 resources
//	migrate: plan -out + apply changing every one of them (kayo: every VM's
//	         owner_node moves to the next of 16 hosts: 200 live migrations)
//	destroy: destroy -auto-approve
//
// kayo: 200 kayo_virtual_machine (1 GiB, 10 GiB dynamic VHD, running) over
// a 16-node cluster and volume O: that the engine sets up, untimed, in a
// fresh data_dir every round; noop: 200 noop_thing of bench/noop (update:
// a changed attribute); noop_vm: 200 noop_vm of bench/noop, kayo's VM
// schema and configuration on a provider that does nothing (so
// kayo/noop_vm is what the provider and engine add to what Terraform and
// the framework spend on this schema); terraform_data: 200 terraform_data
// (input change).
//
//	go test -run '^$' -bench VMLifecycle -benchtime=3x ./bench/...
//
// BENCH_VM_LAYOUT=for_each writes each scenario's 200 resources as one
// block with for_each instead of 200 blocks. The migrate phase differs
// most: to render a diagnostic, Terraform and OpenTofu re-parse the file
// holding its block, so 200 warnings over a file of 200 blocks cost them
// quadratic time (noop_vm pays it as kayo does).
//
// BENCH_SCENARIOS (comma-separated) runs only the scenarios it names;
// the agents scenarios are described in doc.go.
//
// BENCH_KAYO_BEFORE=path adds the scenario kayo_before: the provider
// binary at path (another build, e.g. of main) in the same rounds, so a
// change is measured before and after side by side.
//
// KAYO_PROFILE_DIR=dir makes every kayo provider process write its CPU
// profile in dir/<scenario>, and with KAYO_PROFILE_TRACE=1 its execution
// trace (see main_profile.go); the no-op floors' processes write their
// CPU profiles too (noop/profile.go), to be read side by side. The
// agents scenarios' agents run in the benchmark's process: go test's
// -cpuprofile profiles them.
const vmCount, vmHosts = 200, 16

var vmPhases = [...]string{"create", "migrate", "destroy"}

func BenchmarkVMLifecycle(b *testing.B) {
	ctx := context.Background()
	cliName := os.Getenv("BENCH_CLI")
	if cliName == "" {
		cliName = "terraform"
	}
	cli := testcli.NamedCLI(b, cliName)
	if !testcli.HaveProviderSource() {
		b.Skip("no provider source")
	}
	providers := []testcli.Provider{{Source: "local/bench/noop", Version: "0.1.0", Binary: testcli.Build(b, "./bench/noop")},
		testcli.KayoProvider(b)}
	// BENCH_KAYO_BEFORE: another build of the provider (e.g. of main),
	// timed as kayo_before in the same rounds: before and after side by
	// side.
	before := os.Getenv("BENCH_KAYO_BEFORE")
	if before != "" {
		providers = append(providers, testcli.Provider{Source: beforeSource, Version: "0.1.0", Binary: before})
	}
	mirror := testcli.NewMirror(b, providers...)
	base := b.TempDir()
	type scen struct {
		name  string
		wd    *testcli.Workdir
		setup func(round int) string // returns the data dir (kayo)
		cfg   func(dataDir, vol string, phase int) string
		// teardown, if set, runs after the round's destroy, untimed.
		teardown func()
		// elsewhere, if set, is the configuration after create as a
		// machine that reaches only etcd writes it (planElsewhere).
		elsewhere func() string
		times     [3][]time.Duration
		cpu       [3][]time.Duration // user+sys of the CLI and its plugins
	}
	var volID string
	round := 0
	// kayoScen is a kayo scenario on db, its node work done by agents
	// (agents_test.go) or by the provider's in-process executors.
	kayoScen := func(name string, db agentsDB, withAgents bool) *scen {
		source := testcli.KayoSource
		if name == "kayo_before" {
			source = beforeSource
		}
		s := &scen{name: name}
		s.setup = func(round int) string {
			dir := filepath.Join(base, name+"-data", fmt.Sprint(round))
			volID = vmBenchLab(b, db.config(dir, round), func() {
				// Before the volume: on etcd a node's agent formats it.
				if withAgents {
					a := startAgents(b, db.config(dir, round))
					s.teardown = a.close
				}
			})
			return dir
		}
		s.cfg = func(dataDir, vol string, phase int) string {
			return kayoVMs(source, db.providerBlock(dataDir, round), vol, phase)
		}
		if len(db.etcd) > 0 {
			s.elsewhere = func() string {
				return kayoVMs(source, db.providerBlock(filepath.Join(base, "elsewhere", fmt.Sprint(round)), round), volID, 0)
			}
		}
		return s
	}
	scens := []*scen{
		{name: "terraform_data", cfg: func(_, _ string, phase int) string { return tfDataVMs(phase) }},
		{name: "noop", cfg: func(_, _ string, phase int) string { return noopVMs(phase) }},
		{name: "noop_vm", cfg: func(_, _ string, phase int) string { return noopShapeVMs(phase) }},
		kayoScen("kayo", agentsDB{}, false),
		kayoScen("kayo_before", agentsDB{}, false),
		kayoScen("kayo_agents", agentsDB{}, true),
	}
	// On etcd when there is one (BENCH_SCENARIOS naming it requires it).
	if wanted("kayo_etcd_agents") && (etcdtest.Binary() != "" || os.Getenv("BENCH_SCENARIOS") != "") {
		scens = append(scens, kayoScen("kayo_etcd_agents", agentsDB{etcd: startEtcd(b)}, true))
	}
	// BENCH_SCENARIOS=kayo runs kayo alone (to profile it); ratios are
	// printed for the floors that ran.
	var kept []*scen
	for _, s := range scens {
		if wanted(s.name) && (s.name != "kayo_before" || before != "") {
			kept = append(kept, s)
		}
	}
	scens = kept
	for _, s := range scens {
		dir := filepath.Join(base, s.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		s.wd = testcli.NewWorkdir(cli, dir, mirror)
		if d := os.Getenv("KAYO_PROFILE_DIR"); d != "" && s.name != "terraform_data" {
			// Profiles of every provider process (main_profile.go;
			// noop/profile.go for the floors), a directory per scenario.
			d = filepath.Join(d, s.name)
			if err := os.MkdirAll(d, 0o755); err != nil {
				b.Fatal(err)
			}
			s.wd.Env = append(s.wd.Env, "KAYO_PROFILE_DIR="+d, "KAYO_PROFILE_TRACE="+os.Getenv("KAYO_PROFILE_TRACE"))
			if g := os.Getenv("KAYO_PROFILE_GOGC"); g != "" {
				s.wd.Env = append(s.wd.Env, "GOGC="+g) // the provider's collector setting, to compare
			}
		}
		if err := s.wd.WriteFile("main.tf", s.cfg(filepath.Join(base, "init"), "00000000-0000-0000-0000-000000000000", 0)); err != nil {
			b.Fatal(err)
		}
		testcli.Must(b, s.wd.Init(ctx))
	}
	for b.Loop() {
		// Each round starts one scenario later: a scenario always run
		// first read 1.13x slower than the same binary run second.
		for i := range scens {
			s := scens[(i+round)%len(scens)]
			b.StopTimer()
			dataDir := ""
			if s.setup != nil {
				dataDir = s.setup(round)
			}
			b.StartTimer()
			for p := 0; p < 2; p++ {
				b.StopTimer()
				if err := s.wd.WriteFile("main.tf", s.cfg(dataDir, volID, p)); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				c0 := childCPU()
				r1 := testcli.Must(b, s.wd.Run(ctx, "plan", "-out=bench.tfplan", "-input=false", "-no-color"))
				r2 := testcli.Must(b, s.wd.Run(ctx, "apply", "-input=false", "-no-color", "bench.tfplan"))
				s.times[p] = append(s.times[p], r1.Duration+r2.Duration)
				s.cpu[p] = append(s.cpu[p], childCPU()-c0)
				if p == 0 && round == 0 && s.elsewhere != nil {
					b.StopTimer()
					planElsewhere(ctx, b, s.wd, s.elsewhere())
					b.StartTimer()
				}
			}
			c0 := childCPU()
			r := testcli.Must(b, s.wd.Run(ctx, "destroy", "-auto-approve", "-input=false", "-no-color"))
			s.times[2] = append(s.times[2], r.Duration)
			s.cpu[2] = append(s.cpu[2], childCPU()-c0)
			if s.teardown != nil {
				b.StopTimer()
				s.teardown()
				s.teardown = nil
				b.StartTimer()
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
	var sb strings.Builder
	layout := fmt.Sprint(vmCount, " resource blocks")
	if forEach() {
		layout = "one block, for_each"
	}
	fmt.Fprintf(&sb, "\nVM lifecycle of %d resources (kayo: %d VMs over %d hosts; %s) with %s, %d rounds, interleaved; mean (median) ms; ratios of means (of medians)\n",
		vmCount, vmCount, vmHosts, layout, cli.Name, round)
	fmt.Fprintf(&sb, "%-22s %16s %16s %16s\n", "scenario", vmPhases[0], vmPhases[1], vmPhases[2])
	for _, s := range scens {
		fmt.Fprintf(&sb, "%-22s", s.name)
		for p := range vmPhases {
			fmt.Fprintf(&sb, " %16s", cell(mean(s.times[p]), median(s.times[p])))
			b.ReportMetric(mean(s.times[p]), s.name+"-"+vmPhases[p]+"-ms")
		}
		sb.WriteString("\n")
	}
	// Each kayo scenario against each floor, the agents scenarios against
	// kayo (agents/embedded: the same VMs, the node work done elsewhere)
	// and kayo against kayo_before (after/before).
	for _, k := range scens {
		if !strings.HasPrefix(k.name, "kayo") {
			continue
		}
		for _, floor := range scens {
			switch {
			case !strings.HasPrefix(floor.name, "kayo"):
			case strings.HasSuffix(k.name, "_agents") && floor.name == "kayo":
			case k.name == "kayo" && floor.name == "kayo_before":
			default:
				continue
			}
			fmt.Fprintf(&sb, "%-22s", k.name+"/"+floor.name)
			for p := range vmPhases {
				fmt.Fprintf(&sb, " %16s", ratio(mean(k.times[p])/mean(floor.times[p]), median(k.times[p])/median(floor.times[p])))
				b.ReportMetric(mean(k.times[p])/mean(floor.times[p]), k.name+"/"+floor.name+"-"+vmPhases[p])
			}
			sb.WriteString("\n")
		}
	}
	// CPU time (user + sys of the CLI and the plugins it ran) is what a
	// loaded machine disturbs least.
	fmt.Fprintf(&sb, "CPU (user+sys) ms, mean\n")
	for _, s := range scens {
		fmt.Fprintf(&sb, "%-22s", s.name)
		for p := range vmPhases {
			fmt.Fprintf(&sb, " %16.0f", mean(s.cpu[p]))
		}
		sb.WriteString("\n")
	}
	fmt.Print(sb.String())
}

func benchHost(i int) string { return fmt.Sprintf("BENCH-%02d", i) }

// vmBenchLab registers 16 hosts, a cluster and volume O: in the database
// of cfg, calling beforeVolume (which starts the agents of the agents
// scenarios) between the cluster and the volume.
func vmBenchLab(b *testing.B, cfg engine.Config, beforeVolume func()) string {
	ctx := context.Background()
	e, err := engine.Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	var nodes []string
	for i := 0; i < vmHosts; i++ {
		a := fmt.Sprintf("192.0.2.%d", 100+i)
		if _, err := e.CreateHost(ctx, engine.HostSpec{Name: benchHost(i), Address: a, OSEdition: "enterprise",
			ProcessorVendor: "intel", ProcessorModel: "Xeon E5440", ProcessorCores: 8, MemoryMB: 32768,
			Features: []string{"Hyper-V", "Failover-Clustering"},
			Adapters: []engine.Adapter{{Name: "Public", Network: "192.0.2.0/24", Address: a},
				{Name: "Heartbeat", Network: "10.10.10.0/24", Address: fmt.Sprintf("10.10.10.%d", 100+i)}}}); err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, benchHost(i))
	}
	if _, err := e.CreateCluster(ctx, engine.ClusterSpec{Name: "BENCHCLUSTER", Nodes: nodes, StaticAddress: "192.0.2.50/24",
		Hypervisor: engine.HypervisorSimulator, HeartbeatTimeoutSeconds: 10}); err != nil {
		b.Fatal(err)
	}
	beforeVolume()
	v, err := e.CreateVolume(ctx, engine.VolumeSpec{Cluster: "BENCHCLUSTER", LUN: "lun0", SizeGiB: 500, Label: "VMSTORE",
		DriveLetter: "O", BlockSize: 4096, NodeSlots: 16})
	if err != nil {
		b.Fatal(err)
	}
	return v.ID
}

// beforeSource is the source address of BENCH_KAYO_BEFORE's provider.
const beforeSource = "local/bench/kayobefore"

// kayoVMs is the configuration of the kayo scenarios: source is the
// provider's source address, provider its provider block.
func kayoVMs(source, provider, vol string, phase int) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, `terraform {
  required_providers {
    kayo = { source = %q }
  }
}

%s`, source, provider)
	vmResources(&sb, "kayo_virtual_machine", vol, phase)
	return sb.String()
}

// noopShapeVMs is kayoVMs' configuration on noop_vm, which has the same
// schema and does nothing.
func noopShapeVMs(phase int) string {
	var sb strings.Builder
	sb.WriteString(`terraform {
  required_providers {
    noop = { source = "local/bench/noop" }
  }
}
`)
	vmResources(&sb, "noop_vm", "00000000-0000-0000-0000-000000000000", phase)
	return sb.String()
}

// forEach: BENCH_VM_LAYOUT=for_each (see BenchmarkVMLifecycle).
func forEach() bool { return os.Getenv("BENCH_VM_LAYOUT") == "for_each" }

// vmMap writes local.vms: name => owner node in phase.
func vmMap(sb *strings.Builder, phase int) {
	fmt.Fprintf(sb, "locals {\n  vms = { for i in range(%d) : format(\"VM%%03d\", i) => format(\"BENCH-%%02d\", (i + %d) %% %d) }\n}\n",
		vmCount, phase, vmHosts)
}

func vmResources(sb *strings.Builder, typ, vol string, phase int) {
	if forEach() {
		vmMap(sb, phase)
		fmt.Fprintf(sb, `resource %q "vm" {
  for_each         = local.vms
  cluster_id       = "BENCHCLUSTER"
  volume_id        = %q
  name             = each.key
  memory_mb        = 1024
  vhd              = { size_gib = 10 }
  network_adapters = [{ switch = "Public" }]
  owner_node       = each.value
}
`, typ, vol)
		return
	}
	for i := 0; i < vmCount; i++ {
		fmt.Fprintf(sb, `resource %q "vm%03d" {
  cluster_id       = "BENCHCLUSTER"
  volume_id        = %q
  name             = "VM%03d"
  memory_mb        = 1024
  vhd              = { size_gib = 10 }
  network_adapters = [{ switch = "Public" }]
  owner_node       = %q
}
`, typ, i, vol, i, benchHost((i+phase)%vmHosts))
	}
}

func noopVMs(phase int) string {
	var sb strings.Builder
	sb.WriteString(`terraform {
  required_providers {
    noop = { source = "local/bench/noop" }
  }
}
`)
	if forEach() {
		vmMap(&sb, phase)
		sb.WriteString(`resource "noop_thing" "vm" {
  for_each  = local.vms
  name      = each.key
  model     = each.value
  memory_mb = 1024
  cores     = 1
}
`)
		return sb.String()
	}
	for i := 0; i < vmCount; i++ {
		fmt.Fprintf(&sb, `resource "noop_thing" "vm%03d" {
  name      = "VM%03d"
  model     = %q
  memory_mb = 1024
  cores     = 1
}
`, i, i, benchHost((i+phase)%vmHosts))
	}
	return sb.String()
}

func tfDataVMs(phase int) string {
	var sb strings.Builder
	if forEach() {
		vmMap(&sb, phase)
		sb.WriteString(`resource "terraform_data" "vm" {
  for_each = local.vms
  input    = { name = each.key, memory_mb = 1024, owner_node = each.value }
}
`)
		return sb.String()
	}
	for i := 0; i < vmCount; i++ {
		fmt.Fprintf(&sb, `resource "terraform_data" "vm%03d" {
  input = { name = "VM%03d", memory_mb = 1024, owner_node = %q }
}
`, i, i, benchHost((i+phase)%vmHosts))
	}
	return sb.String()
}

// planElsewhere runs, untimed, a plan of the 200 VMs just created as a
// machine that reaches only the database would (issue 18: a CI job's
// plan): cfg names a data dir that does not exist, so no LUN image is in
// reach (the lab's report of configure, engine.ReportLabVolumes, finds
// none to open) while the agents serve the VMs. It must succeed and find
// nothing to change. The engine's counters of devices and hypervisor
// calls are checked by TestPlanOf200VMsOpensNothing (internal/engine).
func planElsewhere(ctx context.Context, b *testing.B, wd *testcli.Workdir, cfg string) {
	if err := wd.WriteFile("main.tf", cfg); err != nil {
		b.Fatal(err)
	}
	r := wd.Run(ctx, "plan", "-input=false", "-no-color", "-detailed-exitcode")
	if r.ExitCode != 0 {
		out := r.Stdout
		if len(out) > 4000 {
			out = out[len(out)-4000:]
		}
		b.Fatalf("a plan of the %d VMs from a data dir without the LUN exited %d, want 0 (no error, no change):\n...%s\n%s",
			vmCount, r.ExitCode, out, r.Stderr)
	}
	b.Logf("a plan of the %d VMs from a data dir without the LUN (database on etcd, agents up): no error, no change (%s)",
		vmCount, r.Duration.Round(time.Millisecond))
}
