//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/testcli"
)

const (
	killVMs     = 20
	killCluster = "KILLCLUSTER"
	// pluginExitLimit is how soon after its CLI's death a plugin must be
	// gone: it polls its parent every 200 ms and waits at most
	// provider.OrphanGrace (3 s) for the calls it was serving.
	pluginExitLimit = 8 * time.Second
)

// killPoints is how many SIGKILLs of the CLI each CLI's run counts:
// KAYO_KILL_POINTS, else 20 (6 with -short).
func killPoints(t *testing.T) int {
	if v := os.Getenv("KAYO_KILL_POINTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("KAYO_KILL_POINTS=%q: want a positive number", v)
		}
		return n
	}
	if testing.Short() {
		return 6
	}
	return 20
}

// killConfig is two hosts, a cluster, a volume and vms VMs in a for_each.
func killConfig(dataDir string, vms int) string {
	var names []string
	for i := 1; i <= vms; i++ {
		names = append(names, fmt.Sprintf("%q", fmt.Sprintf("VM%02d", i)))
	}
	return providerBlock(dataDir, "60s") + hostBlock("k1", "KILL-01", 61) + hostBlock("k2", "KILL-02", 62) + `
resource "kayo_cluster" "c" {
  name           = "` + killCluster + `"
  nodes          = [kayo_host.k1.name, kayo_host.k2.name]
  static_address = "192.0.2.60/24"
}
resource "kayo_shared_volume" "o" {
  cluster_id   = kayo_cluster.c.id
  lun          = "lun0"
  size_gib     = 8
  label        = "VMSTORE"
  drive_letter = "O"
}
resource "kayo_virtual_machine" "vm" {
  for_each   = toset([` + strings.Join(names, ", ") + `])
  cluster_id = kayo_cluster.c.id
  volume_id  = kayo_shared_volume.o.id
  name       = each.key
  memory_mb  = 512
  vhd        = { size_gib = 1 }
}
`
}

// TestInterruptedApply: the CLI (terraform or tofu, not only the plugin)
// is SIGKILLed at random points while it creates 20 VMs and while it
// removes them. After every kill the provider plugin is gone within
// seconds; a re-apply converges for everything not created; what was
// created but never saved is adopted with the import blocks of `kayoctl
// state orphans`; the plan ends empty, the volume checks clean and the
// history has one owner per VM at a time. KAYO_KILL_SEED repeats a run.
func TestInterruptedApply(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("KAYO_KILL_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("KAYO_KILL_SEED=%q: %v", v, err)
		}
		seed = s
	}
	points := killPoints(t)
	t.Logf("kill seed %d (KAYO_KILL_SEED=%d repeats it), %d kill points per CLI", seed, seed, points)
	kayoctl := testcli.Build(t, "./cmd/kayoctl")
	for _, cli := range testcli.CLIs(t) {
		t.Run(cli.Name, func(t *testing.T) {
			k := &killLab{t: t, kayoctl: kayoctl, rng: rand.New(rand.NewPCG(seed, 17)), dataDir: t.TempDir()}
			k.run(cli, points)
		})
	}
}

type killLab struct {
	t       *testing.T
	kayoctl string
	rng     *rand.Rand
	dataDir string
	wd      *testcli.Workdir
	// figures
	kills, adopted, recoveries int
	restored                   int // unreadable states replaced by their backup
	exits                      []time.Duration
}

func (k *killLab) run(cli testcli.CLI, points int) {
	t := k.t
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	mirror := testcli.NewMirror(t, testcli.KayoProvider(t))
	k.wd = newWorkdir(t, cli, mirror, "kill", killConfig(k.dataDir, killVMs))
	testcli.Must(t, k.wd.Init(ctx))

	// Uninterrupted once each way: the durations the kills fall within,
	// the whole run's and its changes' (from the first "Creating..." or
	// "Destroying...").
	full := k.startApply(ctx).finish(t)
	k.setVMs(0)
	empty := k.startApply(ctx).finish(t)
	t.Logf("uninterrupted: create %d VMs %s (changes %s), remove them %s (changes %s)", killVMs,
		full.total.Round(time.Millisecond), full.changes.Round(time.Millisecond),
		empty.total.Round(time.Millisecond), empty.changes.Round(time.Millisecond))

	vms := 0
	for attempt := 0; k.kills < points; attempt++ {
		if attempt > 4*points {
			t.Fatalf("only %d kill points hit a running plugin in %d attempts", k.kills, attempt)
		}
		// Alternate: kill while creating the 20 VMs, then while removing them.
		want, took := killVMs, full
		if vms == killVMs {
			want, took = 0, empty
		}
		k.setVMs(want)
		// Two kills in three fall while the CLI makes changes, the others
		// anywhere (loading, refreshing, planning); within the first 4/5 of
		// the uninterrupted run's time, so that few runs end first.
		if k.rng.IntN(3) < 2 {
			k.killApply(ctx, true, time.Duration(k.rng.Int64N(int64(took.changes)*4/5+1)))
		} else {
			k.killApply(ctx, false, time.Duration(k.rng.Int64N(int64(took.total)*4/5+1)))
		}
		k.recover(ctx, want)
		vms = want
	}
	if vms != killVMs {
		k.setVMs(killVMs)
		testcli.Must(t, k.wd.Apply(ctx))
	}
	k.checkEnd(ctx)
	t.Logf("%d kill points (%d recoveries adopted orphans, %d objects adopted, %d unreadable states restored from backup); "+
		"plugin gone after the CLI's death in %s; %s in all",
		k.kills, k.recoveries, k.adopted, k.restored, durations(k.exits), time.Since(start).Round(time.Second))
}

func (k *killLab) setVMs(n int) {
	if err := k.wd.WriteFile("main.tf", killConfig(k.dataDir, n)); err != nil {
		k.t.Fatal(err)
	}
}

// applyRun is one apply started in the lab's work dir.
type applyRun struct {
	cmd     *exec.Cmd
	start   time.Time
	out     *lockedBuffer
	changes chan struct{} // closed at the first "Creating..." or "Destroying..."
	changed time.Time
	exited  chan error
}

type applyTimes struct{ total, changes time.Duration }

func (k *killLab) startApply(ctx context.Context) *applyRun {
	cmd := exec.CommandContext(ctx, k.wd.CLI.Path, "apply", "-auto-approve", "-input=false", "-no-color")
	cmd.Dir, cmd.Env = k.wd.Dir, k.wd.Environ()
	r := &applyRun{cmd: cmd, out: &lockedBuffer{}, changes: make(chan struct{}), exited: make(chan error, 1)}
	pr, pw, err := os.Pipe()
	if err != nil {
		k.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	r.start = time.Now()
	if err := cmd.Start(); err != nil {
		k.t.Fatal(err)
	}
	pw.Close()
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			r.out.WriteLine(line)
			if r.changed.IsZero() && (strings.Contains(line, ": Creating...") || strings.Contains(line, ": Destroying...")) {
				r.changed = time.Now()
				close(r.changes)
			}
		}
		pr.Close()
	}()
	go func() {
		err := cmd.Wait()
		<-read // a killed CLI's plugin may hold the pipe: it exits too
		r.exited <- err
	}()
	return r
}

// finish waits for an uninterrupted apply and returns how long it took.
func (r *applyRun) finish(t *testing.T) applyTimes {
	if err := <-r.exited; err != nil {
		t.Fatalf("apply: %v\n%s", err, tail(r.out.String()))
	}
	end := time.Now()
	if r.changed.IsZero() {
		t.Fatalf("apply made no change:\n%s", tail(r.out.String()))
	}
	return applyTimes{total: end.Sub(r.start), changes: end.Sub(r.changed)}
}

// killApply starts apply, SIGKILLs the CLI after delay (counted from its
// first change when inChanges; later if no plugin runs then) and asserts
// that every provider plugin of the work dir is gone soon after. Every
// kill is a kill point; an apply that ends first is not.
func (k *killLab) killApply(ctx context.Context, inChanges bool, delay time.Duration) {
	t := k.t
	r := k.startApply(ctx)
	phase := "from the start"
	if inChanges {
		phase = "into its changes"
		select {
		case <-r.changes:
		case err := <-r.exited:
			t.Fatalf("apply ended before changing anything (%v):\n%s", err, tail(r.out.String()))
		}
	}
	select {
	case err := <-r.exited:
		t.Logf("apply ended by itself within %s %s (%v): not a kill point", delay.Round(time.Millisecond), phase, err)
		return
	case <-time.After(delay):
	}
	// Kill while a plugin runs: the CLI starts one per stage (validate,
	// plan, apply), and a kill between them tests nothing of the plugin.
	plugins := pluginsOf(r.cmd.Process.Pid, k.wd.Dir)
	for len(plugins) == 0 {
		select {
		case err := <-r.exited:
			t.Logf("apply ended by itself (%v) with no plugin seen after %s %s: not a kill point", err, delay.Round(time.Millisecond), phase)
			return
		case <-time.After(5 * time.Millisecond):
		}
		plugins = pluginsOf(r.cmd.Process.Pid, k.wd.Dir)
	}
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	killedAt := time.Now()
	plugins = unique(append(plugins, pluginsOf(-1, k.wd.Dir)...))
	for {
		var left []int
		for _, p := range plugins {
			if running(p) {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Since(killedAt) > pluginExitLimit {
			for _, p := range left { // leave no orphan behind the failure
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
			t.Fatalf("the CLI was SIGKILLed %s ago and its provider plugin(s) %v still run\n--- CLI output ---\n%s",
				time.Since(killedAt).Round(time.Millisecond), left, tail(r.out.String()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	gone := time.Since(killedAt)
	<-r.exited
	k.kills++
	k.exits = append(k.exits, gone)
	t.Logf("kill %d, %s %s (%s): plugin(s) %v gone %s later", k.kills, delay.Round(time.Millisecond), phase,
		lastLine(r.out.String()), plugins, gone.Round(time.Millisecond))
}

// lockedBuffer collects a CLI's output lines for several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) WriteLine(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(s + "\n")
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func unique(xs []int) []int {
	seen := map[int]bool{}
	var out []int
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// recover re-applies the configuration of vms VMs; objects created but
// never saved fail that apply with "already exists", and are adopted
// through the orphans command's import blocks. Nothing of the cluster is
// in no state afterwards.
func (k *killLab) recover(ctx context.Context, vms int) {
	t := k.t
	r := k.wd.Apply(ctx)
	if r.Err != nil && brokenState(r) {
		// Terraform rewrites terraform.tfstate in place: killed mid-write it
		// leaves a truncated file it cannot read. As a user would, put the
		// state before that run (terraform.tfstate.backup) back; the
		// orphans command adopts what was made since.
		k.restoreBackup()
		r = k.wd.Apply(ctx)
	}
	if r.Err != nil {
		out := strings.Join(strings.Fields(r.Stdout+r.Stderr), " ")
		if n := strings.Count(out, "Error: "); n == 0 || n != strings.Count(out, "Adopt it with this import block") {
			t.Fatalf("re-apply after the kill failed other than on objects that exist already (%d errors): %v", n, r.Err)
		}
		k.adopt(ctx, vms)
	}
	// Converged: nothing of the cluster is missing from the state (the
	// plan is checked empty at the end, after the last kill).
	if out := k.ctl("state", "orphans", "--state", filepath.Join(k.wd.Dir, "terraform.tfstate")); !strings.Contains(out, ": 0 objects") {
		t.Fatalf("objects in no state after recovering from the kill:\n%s", out)
	}
}

// brokenState: the CLI could not read its own state file.
func brokenState(r testcli.Result) bool {
	out := strings.Join(strings.Fields(r.Stdout+r.Stderr), " ")
	return strings.Contains(out, "syntax error at byte offset") || strings.Contains(out, "required to identify the format version")
}

// restoreBackup puts terraform.tfstate.backup in place of the state file
// (no backup: no state).
func (k *killLab) restoreBackup() {
	t := k.t
	state := filepath.Join(k.wd.Dir, "terraform.tfstate")
	b, err := os.ReadFile(state + ".backup")
	if errors.Is(err, os.ErrNotExist) {
		b, err = nil, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, b, 0o644); err != nil {
		t.Fatal(err)
	}
	k.restored++
	t.Logf("the kill left terraform.tfstate unreadable; restored terraform.tfstate.backup (%d bytes)", len(b))
}

// orphanJSON is one object of `kayoctl state orphans --json`.
type orphanJSON struct {
	Type, ID, To string
	From         string `json:"address_from"`
	Unsettled    string
}

// planOrphans saves a plan and lists the orphans with its addresses; it
// returns them and the plan's show -json file.
func (k *killLab) planOrphans(ctx context.Context) ([]orphanJSON, string) {
	t := k.t
	testcli.Must(t, k.wd.Run(ctx, "plan", "-out=recover.plan", "-input=false", "-no-color"))
	planJSON := testcli.Must(t, k.wd.ShowJSON(ctx, "recover.plan")).Stdout
	planFile := filepath.Join(k.wd.Dir, "recover.json")
	if err := os.WriteFile(planFile, []byte(planJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	var list []orphanJSON
	if err := json.Unmarshal([]byte(k.ctl("state", "orphans", "--state-json", planFile, "--json")), &list); err != nil {
		t.Fatal(err)
	}
	return list, planFile
}

// adopt writes the orphans command's import blocks (addresses from a
// saved plan) to orphans.tf and applies them. Objects the configuration
// of vms VMs no longer declares (killed while removing them, and the CLI
// lost them from its state: Terraform rewrites terraform.tfstate in
// place, so a kill can leave it empty) are adopted under the full
// configuration, and the next apply removes them.
func (k *killLab) adopt(ctx context.Context, vms int) {
	t := k.t
	list, planFile := k.planOrphans(ctx)
	if len(list) == 0 {
		t.Fatal("apply said objects exist already, but state orphans finds none")
	}
	undeclared := 0
	for _, o := range list {
		if o.From != "plan" {
			undeclared++
		}
	}
	if undeclared > 0 && vms != killVMs {
		t.Logf("%d orphans the configuration of %d VMs does not declare: adopting them under the full one", undeclared, vms)
		k.setVMs(killVMs)
		list, planFile = k.planOrphans(ctx)
	}
	// A VM whose creation the kill cut short is listed unsettled, without
	// a block: the adopting apply reaches it (when the state lost the
	// hosts, the re-apply stopped at them) and rolls it back and creates
	// it anew.
	importable, unsettled := 0, 0
	for _, o := range list {
		switch {
		case o.From != "plan":
			t.Fatalf("orphan %s %s: address from %q; want the plan's address", o.Type, o.ID, o.From)
		case o.Unsettled != "":
			unsettled++
		default:
			importable++
		}
	}
	// With the state file itself, the same objects are found (when the
	// kill left one that parses).
	stateFile := filepath.Join(k.wd.Dir, "terraform.tfstate")
	if out, err := k.ctlErr("state", "orphans", "--state", stateFile, "--json"); err != nil {
		t.Logf("state orphans --state after the kill: %v", err)
	} else {
		var viaState []orphanJSON
		if err := json.Unmarshal([]byte(out), &viaState); err != nil {
			t.Fatal(err)
		}
		if len(viaState) != len(list) {
			t.Errorf("state orphans --state finds %d objects, --state-json of the plan %d", len(viaState), len(list))
		}
	}
	if err := k.wd.WriteFile("orphans.tf", k.ctl("state", "orphans", "--state-json", planFile)); err != nil {
		t.Fatal(err)
	}
	r := testcli.Must(t, k.wd.Apply(ctx))
	if want := fmt.Sprintf("%d imported", importable); importable > 0 && !strings.Contains(r.Stdout, want) {
		t.Errorf("apply of orphans.tf did not say %q:\n%s", want, tail(r.Stdout))
	}
	k.adopted += importable
	k.recoveries++
	t.Logf("adopted %d orphans (%d more with an interrupted creation, settled by that apply)", importable, unsettled)
	// Adopted: the blocks would name instances the next configuration lacks.
	if err := os.Remove(filepath.Join(k.wd.Dir, "orphans.tf")); err != nil {
		t.Fatal(err)
	}
	if undeclared > 0 && vms != killVMs {
		k.setVMs(vms)
		testcli.Must(t, k.wd.Apply(ctx))
	}
}

// checkEnd: 20 VMs, none with an operation pending, every one in the
// state; the volume checks clean; one owner per VM at a time.
func (k *killLab) checkEnd(ctx context.Context) {
	t := k.t
	changes, r := k.wd.Plan(ctx)
	testcli.Must(t, r)
	if changes {
		t.Fatalf("final plan is not empty:\n%s", r.Stdout)
	}
	var vms []struct{ Name, Status, Pending string }
	if err := json.Unmarshal([]byte(k.ctl("vm", "list", "--json")), &vms); err != nil {
		t.Fatal(err)
	}
	if len(vms) != killVMs {
		t.Errorf("%d VMs in the cluster database, want %d", len(vms), killVMs)
	}
	for _, v := range vms {
		if v.Pending != "" || v.Status != engine.VMRunning {
			t.Errorf("VM %s: status %s, pending %q", v.Name, v.Status, v.Pending)
		}
	}
	if orphans := k.ctl("state", "orphans", "--state", filepath.Join(k.wd.Dir, "terraform.tfstate")); !strings.Contains(orphans, "0 objects") {
		t.Errorf("orphans left at the end:\n%s", orphans)
	}
	t.Logf("volume check: %s", lastLine(k.ctl("volume", "check", killCluster+"/O")))
	var evs []foEvent
	if err := json.Unmarshal([]byte(k.ctl("events", "--json", "--kind", "vm.")), &evs); err != nil {
		t.Fatal(err)
	}
	owners := checkOwnerHistory(t, evs)
	t.Logf("history: %d VM events, %d owner changes, one owner per VM at a time", len(evs), owners)
}

// ctl runs kayoctl on the lab's data dir and returns its stdout; a
// failure (exit code not 0) fails the test.
func (k *killLab) ctl(args ...string) string {
	k.t.Helper()
	out, err := k.ctlErr(args...)
	if err != nil {
		k.t.Fatal(err)
	}
	return out
}

func (k *killLab) ctlErr(args ...string) (string, error) {
	cmd := exec.Command(k.kayoctl, append([]string{"--data-dir", k.dataDir}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kayoctl %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String(), nil
}

// checkOwnerHistory replays the VM events: a VM is created without an
// owner, deleted by its owner, and every other ownership change starts
// from the current owner and token and raises the token by one; every
// start, stop, failure and migration names the current owner and token.
// It returns the number of owner changes.
func checkOwnerHistory(t *testing.T, evs []foEvent) int {
	t.Helper()
	type own struct {
		node   string
		token  int
		exists bool
	}
	owners := map[string]*own{}
	changes := 0
	for _, ev := range evs {
		key := ev.Subject
		o := owners[key]
		if o == nil {
			o = &own{}
			owners[key] = o
		}
		tok, _ := strconv.Atoi(ev.Detail["token"])
		switch ev.Kind {
		case engine.EventVMOwnerChanged:
			changes++
			from, to, reason := ev.Detail["from"], ev.Detail["to"], ev.Detail["reason"]
			prev, _ := strconv.Atoi(ev.Detail["previous_token"])
			switch {
			case reason == "create" && o.exists:
				t.Errorf("rev %d: VM %s created while %s owns it", ev.Revision, key, o.node)
			case reason != "create" && (!o.exists || from != o.node || prev != o.token):
				t.Errorf("rev %d: VM %s changes owner (%s) from %s/%d but the owner was %+v", ev.Revision, key, reason, from, prev, *o)
			case tok != prev+1:
				t.Errorf("rev %d: VM %s token %d after %d", ev.Revision, key, tok, prev)
			}
			o.node, o.token, o.exists = to, tok, to != ""
		case engine.EventVMStarted, engine.EventVMStopped, engine.EventVMFailed, engine.EventVMMigrationCompleted:
			node := ev.Detail["node"]
			if ev.Kind == engine.EventVMMigrationCompleted {
				node = ev.Detail["to"]
			}
			if !o.exists || node != o.node || tok != o.token {
				t.Errorf("rev %d: %s of VM %s on %s with token %d, but the owner is %+v", ev.Revision, ev.Kind, key, node, tok, *o)
			}
		}
	}
	if len(owners) != killVMs {
		t.Errorf("histories of %d VMs, want %d", len(owners), killVMs)
	}
	return changes
}

// pluginsOf lists the provider plugins among the children of parent (any
// parent when -1) running in dir.
func pluginsOf(parent int, dir string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, ppid, state, ok := procStat(pid)
		if !ok || state == 'Z' || !strings.HasPrefix(comm, "terraform-provi") || (parent != -1 && ppid != parent) {
			continue
		}
		if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err == nil && cwd == dir {
			out = append(out, pid)
		}
	}
	return out
}

// running: pid exists and is no zombie.
func running(pid int) bool {
	_, _, state, ok := procStat(pid)
	return ok && state != 'Z' && state != 'X'
}

// procStat reads the command name, parent pid and state of pid.
func procStat(pid int) (comm string, ppid int, state byte, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, 0, false
	}
	open, closing := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open || closing+2 >= len(b) {
		return "", 0, 0, false
	}
	fields := strings.Fields(string(b[closing+2:]))
	if len(fields) < 2 {
		return "", 0, 0, false
	}
	ppid, _ = strconv.Atoi(fields[1])
	return string(b[open+1 : closing]), ppid, fields[0][0], true
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func tail(s string) string {
	if len(s) > 3000 {
		return "..." + s[len(s)-3000:]
	}
	return s
}

// durations summarises ds: min, median, max.
func durations(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	s := append([]time.Duration(nil), ds...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	r := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	return fmt.Sprintf("min %s, median %s, max %s", r(s[0]), r(s[len(s)/2]), r(s[len(s)-1]))
}
