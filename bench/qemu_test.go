package bench

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	stdnet "net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/dhcpserve"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor/qemu"
	"github.com/kayo-labs/terraform-provider-kayo/internal/netnsrig"
	"github.com/kayo-labs/terraform-provider-kayo/internal/qemutest"
)

// BenchmarkQEMUMigration live-migrates the test guest (128 MiB and 1 GiB)
// back and forth between two hosts, each a network namespace of a
// netnsrig rig, with a TCP stream to the guest running across every move,
// two ways, interleaved round by round in one run:
//
//	floor  raw QMP (qemutest.Floor): the guest booted once; per move launch
//	       the target with -incoming defer, hand both QEMUs the
//	       connection the agents' handshake authenticated, TLS with a
//	       pre-shared key, the same MigrationParams, `migrate`, poll
//	       query-migrate, kill the source once the target has the state,
//	       `cont`. No database, no agents, no Kayo FS: its disk is a raw
//	       file served by the same NBD server (one per side).
//	kayo   the engine's UpdateVM of owner_node on a qemu cluster (what
//	       terraform apply calls), carried out by two `kayoctl agent`
//	       processes, the disk a dynamic VHD on Kayo FS served over NBD.
//
// The network is the same for both: each side's host has a Public link
// (the migration's connection runs between the hosts' addresses there)
// and a VMNet link, which a switch bridge holds with the guest's tap on
// it: for kayo the agents' external switch, for the floor the same bridge
// and tap made by the agents' code (qemutest.FloorSwitch) in two more
// hosts of the rig. Each guest takes its address by DHCP (kayo: its
// node's agent; floor: the same DHCP server code on the rig's VMNet
// bridge) and runs an echo server; the benchmark, on the machine's own
// stack (the rig's gateway on VMNet), holds one TCP connection to each
// guest for the whole run and sends a 256-byte numbered record every
// 5 ms, checking every echoed byte (qemutest.Stream). A move's stall is
// the longest time without an echoed byte from the move's start until
// the echo flows again after it; the run fails if a connection breaks.
//
// Both guests are booted once, fully (counter running), moved twice
// untimed (the first move after boot carries the boot's dirty memory),
// then timed; each round checks the counter continues (same boot). Each
// size runs alone: the other size's guests and agents are gone.
// Metrics: QEMU's total-time and downtime (query-migrate), the wall
// time of the whole move as its caller sees it (floor: target launch →
// cont returned; kayo: the UpdateVM call), and the stream's stall.
//
// On 2 TCG cores a move's downtime and total are bimodal (a few ms, or
// tens when a busy thread is descheduled at the stop-and-copy) for both
// sides alike, so a median flips between the modes from run to run; the
// ratio of means is the headline, with a bootstrap 95% interval, and
// medians are printed beside it.
//
//	go test -run '^$' -bench QEMUMigration -benchtime=30x ./bench/
func BenchmarkQEMUMigration(b *testing.B) {
	bin, g, err := qemutest.Prepare(qemutest.RepoRoot())
	if err != nil {
		qemutest.SkipOrFail(b, err)
	}
	results := map[string]*migRow{}
	add := func(key string, total, down, pause, wall int64, stall time.Duration, echoed int64) {
		r := results[key]
		if r == nil {
			r = &migRow{}
			results[key] = r
		}
		for j, v := range []float64{float64(total), float64(down), float64(pause), float64(wall), float64(stall.Microseconds()) / 1000} {
			r.m[j] = append(r.m[j], v)
		}
		r.echoed += echoed
		r.worst = max(r.worst, stall)
	}
	parent := b
	sizes := []int64{128, 1024}
	for si, mem := range sizes {
		var floor *qemutest.Floor
		var kayo *qemuKayo
		var fs, ks *qemutest.Stream
		b.Run(fmt.Sprintf("mem=%dMiB", mem), func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			if floor == nil { // once per size: the sub-benchmark runs with N=1 first
				owner := cleanupOn{b, parent}
				net := &labNet{rig: netnsrig.New(owner, "Public", "VMNet"), prefix: fmt.Sprintf("10.79.%d", si)}
				net.rig.Gateway("VMNet", netip.MustParsePrefix(net.addr(1)+"/24"))
				floor, fs = startNetFloor(ctx, owner, bin, g, mem, net)
				parent.Cleanup(floor.Close)
				kayo, ks = newQEMUKayo(owner, mem, filepath.Dir(g.Kernel), net)
				for i := 0; i < 2; i++ {
					if _, _, err := across(ctx, fs, func() error { _, err := floor.Migrate(ctx); return err }); err != nil {
						b.Fatalf("floor: %v%s", err, guestTrouble(floor.Serial()))
					}
					if err := floor.Verify(ctx); err != nil {
						b.Fatal(err)
					}
					if _, _, err := across(ctx, ks, func() error { kayo.migrate(ctx, b); return nil }); err != nil {
						b.Fatalf("kayo: %v%s", err, guestTrouble(kayo.serial()))
					}
				}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				runFloor := func() {
					var res qemutest.FloorResult
					echoed, stall, err := across(ctx, fs, func() (err error) { res, err = floor.Migrate(ctx); return err })
					if err != nil {
						b.Fatalf("floor: %v%s", err, guestTrouble(floor.Serial()))
					}
					add(fmt.Sprintf("%d floor", mem), res.TotalMs, res.DowntimeMs, res.DowntimeMs+res.ResumeMs, res.WallMs, stall, echoed)
					if err := floor.Verify(ctx); err != nil {
						b.Fatal(err)
					}
				}
				runKayo := func() {
					var lm *engine.MigrationRecord
					var resume, wall int64
					echoed, stall, err := across(ctx, ks, func() error { lm, resume, wall = kayo.migrate(ctx, b); return nil })
					if err != nil {
						b.Fatalf("kayo: %v%s", err, guestTrouble(kayo.serial()))
					}
					add(fmt.Sprintf("%d kayo", mem), lm.DurationMs, lm.DowntimeMs, lm.DowntimeMs+resume, wall, stall, echoed)
				}
				if i%2 == 0 { // alternate who goes first
					runFloor()
					runKayo()
				} else {
					runKayo()
					runFloor()
				}
			}
			b.StopTimer()
			for _, p := range []string{"floor", "kayo"} {
				if r := results[fmt.Sprintf("%d %s", mem, p)]; r != nil {
					for j, name := range migMetrics {
						b.ReportMetric(qmean(r.m[j]), p+"-"+name+"-ms")
					}
				}
			}
		})
		// The next size runs alone.
		if floor != nil {
			fs.Close()
			floor.Close()
		}
		if kayo != nil { // nil when its start failed the sub-benchmark
			ks.Close()
			kayo.close(b)
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nlive migration with a TCP stream, ms: mean (median)   n")
	for _, m := range migMetrics {
		fmt.Fprintf(&sb, " %14s", m)
	}
	sb.WriteString("\n")
	for _, mem := range sizes {
		f, k := results[fmt.Sprintf("%d floor", mem)], results[fmt.Sprintf("%d kayo", mem)]
		for _, p := range []struct {
			name string
			r    *migRow
		}{{"floor (raw QMP)", f}, {"kayo (UpdateVM)", k}} {
			if p.r == nil {
				continue
			}
			fmt.Fprintf(&sb, "  %4d MiB %-22s %3d", mem, p.name, len(p.r.m[0]))
			for j := range migMetrics {
				fmt.Fprintf(&sb, " %14s", fmt.Sprintf("%.0f (%.0f)", qmean(p.r.m[j]), qmedian(p.r.m[j])))
			}
			sb.WriteString("\n")
		}
		if f == nil || k == nil {
			continue
		}
		fmt.Fprintf(&sb, "  %4d MiB %-22s    ", mem, "kayo/floor, means")
		for j := range migMetrics {
			fmt.Fprintf(&sb, " %14s", fmt.Sprintf("%.2fx", qmean(k.m[j])/max(qmean(f.m[j]), 1)))
		}
		fmt.Fprintf(&sb, "\n  %4d MiB %-22s    ", mem, "  95% interval")
		for j := range migMetrics {
			lo, hi := ratioInterval(k.m[j], f.m[j])
			fmt.Fprintf(&sb, " %14s", fmt.Sprintf("%.2f-%.2f", lo, hi))
		}
		fmt.Fprintf(&sb, "\n  %4d MiB %-22s    ", mem, "kayo/floor, medians")
		for j := range migMetrics {
			fmt.Fprintf(&sb, " %14s", fmt.Sprintf("%.2fx", qmedian(k.m[j])/max(qmedian(f.m[j]), 1)))
		}
		sb.WriteString("\n")
		for _, p := range []struct {
			name string
			r    *migRow
		}{{"floor", f}, {"kayo", k}} {
			n := len(p.r.m[0])
			fmt.Fprintf(&sb, "  %4d MiB %-5s stream: one connection across all %d timed moves (+2 untimed), %.1f MiB echoed in the moves' windows (%.0f KiB a move), longest stall %d ms\n",
				mem, p.name, n, float64(p.r.echoed)/(1<<20), float64(p.r.echoed)/1024/float64(max(n, 1)), p.r.worst.Milliseconds())
		}
	}
	sb.WriteString("  total, downtime: QEMU's query-migrate; pause: downtime + completion to `cont` on the target (what the\n" +
		"  guest sees stopped); wall: the whole move as its caller waits for it (floor: target launch to cont and\n" +
		"  the source gone; kayo: UpdateVM); stall: the longest time without an echoed byte of the stream from the\n" +
		"  move's start until it flows again; interval: bootstrap of the ratio of means over the rounds\n")
	b.Log(sb.String())
	_, _ = fmt.Fprint(os.Stdout, sb.String())
}

// streamEvery is the stream's pace: a record of qemutest.StreamRecord
// bytes every 5 ms (51 KB/s each way), steady traffic the guest's echo
// server keeps up with on TCG, so a stall is the move's and not a
// backlog's.
const streamEvery = 5 * time.Millisecond

// across runs move with stream s running and returns what s saw from the
// move's start until the echo flows again after it: bytes echoed and the
// longest stall; an error when the move failed or the connection broke.
func across(ctx context.Context, s *qemutest.Stream, move func() error) (echoed int64, stall time.Duration, err error) {
	s.Mark()
	if err := move(); err != nil {
		return 0, 0, err
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := s.WaitEchoed(wctx, s.Echoed()); err != nil {
		return 0, 0, fmt.Errorf("the stream after the move: %w", err)
	}
	return s.Window()
}

// guestTrouble is what the guest's kernel said of a fault (a BUG, an
// oops, a panic: the first lines of the first one) in its serial log, to
// tell a guest that broke from a network that did.
func guestTrouble(serial string) string {
	data, _ := os.ReadFile(serial)
	lines := strings.Split(string(data), "\n")
	for i, l := range lines {
		if strings.Contains(l, "BUG") || strings.Contains(l, "Oops") || strings.Contains(l, "Kernel panic") {
			return "\nthe guest's kernel (" + serial + "):\n" + strings.Join(lines[i:min(len(lines), i+12)], "\n")
		}
	}
	return ""
}

// floorMAC is the floor guest's adapter's MAC (the agents give theirs
// Hyper-V's 00:15:5d prefix).
const floorMAC = "52:54:00:4b:00:01"

// startNetFloor is the floor on net: two more hosts of its rig (Public
// 192.0.2.31+i, VMNet <prefix>.31+i), each with the bridge and tap an
// agent makes for an external switch (qemutest.FloorSwitch), the guest's
// address <prefix>.200/24 by DHCP from internal/dhcpserve on the rig's
// VMNet bridge, the migration between the hosts' Public addresses, and
// the stream to the guest.
func startNetFloor(ctx context.Context, owner testing.TB, bin string, g qemu.Guest, mem int64, net *labNet) (*qemutest.Floor, *qemutest.Stream) {
	owner.Helper()
	fn := &qemutest.FloorNet{MAC: floorMAC}
	for i := range fn.Sides {
		h := net.rig.AddHost(fmt.Sprintf("floor-%c", 'a'+i), map[string]netip.Prefix{
			"Public": netip.MustParsePrefix(fmt.Sprintf("192.0.2.%d/24", 31+i)),
			"VMNet":  netip.MustParsePrefix(net.addr(31+i) + "/24"),
		})
		if err := qemutest.FloorSwitch(ctx, h.NS, net.addr(31+i), "kflbr0", "kfltap0"); err != nil {
			owner.Fatal(err)
		}
		fn.Sides[i] = qemutest.FloorSide{NS: h.NS, Tap: "kfltap0", MigAddr: fmt.Sprintf("192.0.2.%d", 31+i)}
	}
	guest := netip.MustParsePrefix(net.addr(200) + "/24")
	dctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- dhcpserve.Serve(dctx, net.rig.Bridge("VMNet"), &dhcpserve.Server{Lookup: func(mac stdnet.HardwareAddr) (netip.Prefix, bool) {
			return guest, mac.String() == floorMAC
		}}, func() netip.Addr { return netip.MustParseAddr(net.addr(1)) })
	}()
	owner.Cleanup(func() { stop(); <-served })
	floor, err := qemutest.StartFloorNet(ctx, bin, g, mem, 1<<30, owner.TempDir(), fn)
	if err != nil {
		owner.Fatal(err)
	}
	floor.Key = bytes.Repeat([]byte{0x4b}, 32) // the agents' channel: authenticated, TLS-PSK
	s, err := qemutest.DialStream(ctx, guest.Addr().String()+":7", streamEvery)
	if err != nil {
		floor.Close()
		owner.Fatalf("floor: %v", err)
	}
	return floor, s
}

var migMetrics = [...]string{"total", "downtime", "pause", "wall", "stall"}

// migRow holds one side's rounds, per metric of migMetrics, and its
// stream's bytes echoed and longest stall over them.
type migRow struct {
	m      [len(migMetrics)][]float64
	echoed int64
	worst  time.Duration
}

func qmean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func qmedian(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// ratioInterval is a bootstrap 95% interval of mean(k)/mean(f): both
// samples resampled with replacement, 2000 times, fixed seed.
func ratioInterval(k, f []float64) (lo, hi float64) {
	if len(k) == 0 || len(f) == 0 {
		return 0, 0
	}
	rng := rand.New(rand.NewPCG(1, 2))
	resample := func(xs []float64) float64 {
		var s float64
		for range xs {
			s += xs[rng.IntN(len(xs))]
		}
		return s / float64(len(xs))
	}
	rs := make([]float64, 2000)
	for i := range rs {
		rs[i] = resample(k) / max(resample(f), 1)
	}
	sort.Float64s(rs)
	return rs[len(rs)*25/1000], rs[len(rs)*975/1000]
}

// cleanupOn is a sub-benchmark's TB whose cleanups and temp dirs belong to
// the parent: the environment outlives the sub-benchmark's N=1 run.
type cleanupOn struct {
	testing.TB
	parent testing.TB
}

func (c cleanupOn) Cleanup(f func())   { c.parent.Cleanup(f) }
func (c cleanupOn) TempDir() string    { return c.parent.TempDir() }
func (c cleanupOn) Setenv(k, v string) { c.parent.Setenv(k, v) }

// newQEMUKayo is the kayo side: the lab on net (newQEMULab) with guest
// WEB01 booted on its first node, its adapter on switch VMNet, and the
// stream to it.
func newQEMUKayo(b testing.TB, mem int64, guestDir string, net *labNet) (*qemuKayo, *qemutest.Stream) {
	b.Helper()
	k := newQEMULab(b, guestDir, 8, net)
	k.spec = engine.VMSpec{Cluster: "HVCLUSTER", Volume: k.vol, Name: "WEB01", MemoryMB: mem,
		ProcessorCount: 1, VHD: engine.VHDSpec{SizeGiB: 1, Type: engine.VHDDynamic}, OwnerNode: k.nodes[0], AntiAffinityMode: "preferred",
		Adapters: []engine.VMAdapter{{Switch: "VMNet"}}, Migration: engine.MigrationLive, State: engine.VMRunning,
		Failback: engine.FailbackSpec{Mode: engine.FailbackPrevent}, MaxFailures: 1, FailurePeriodHours: 6}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	vm := k.createVM(ctx, b)
	var err error
	if k.id, k.n, err = qemutest.WaitCounterID(ctx, k.serial(), 3); err != nil {
		b.Fatal(err)
	}
	if len(vm.AdapterAddresses) != 1 || vm.AdapterAddresses[0] == "" {
		b.Fatalf("WEB01's addresses: %q", vm.AdapterAddresses)
	}
	s, err := qemutest.DialStream(ctx, strings.Split(vm.AdapterAddresses[0], "/")[0]+":7", streamEvery)
	if err != nil {
		b.Fatalf("kayo: %v", err)
	}
	b.Cleanup(s.Close)
	return k, s
}

// migrate moves the guest to the other node with UpdateVM (timed) and
// checks its counter continues there. resume is the milliseconds from the
// source agent seeing the migration complete to the target agent's cont
// returning (from their logs).
func (k *qemuKayo) migrate(ctx context.Context, b testing.TB) (lm *engine.MigrationRecord, resume, wall int64) {
	b.Helper()
	if id, n, ok := qemutest.Counter(k.serial()); ok {
		k.id, k.n = id, n
	}
	if k.spec.OwnerNode == k.nodes[0] {
		k.spec.OwnerNode = k.nodes[1]
	} else {
		k.spec.OwnerNode = k.nodes[0]
	}
	t0 := time.Now()
	vm, err := k.e.UpdateVM(ctx, k.spec)
	wall = time.Since(t0).Milliseconds()
	if err != nil {
		b.Fatal(err)
	}
	lm = vm.LastMigration
	if lm == nil || lm.Type != engine.MigrationLive || vm.Node != k.spec.OwnerNode {
		b.Fatalf("migration: node %s, %+v", vm.Node, lm)
	}
	id, n, err := qemutest.WaitCounterID(ctx, k.serial(), k.n+1)
	if err != nil {
		b.Fatal(err)
	}
	if id != k.id {
		b.Fatalf("the guest rebooted: boot id %s before the move, %s after", k.id, id)
	}
	k.n = n
	from := k.nodes[0]
	if from == k.spec.OwnerNode {
		from = k.nodes[1]
	}
	done := agentLogTime(b, filepath.Join(k.dir, "agent-"+from+".log"), "WEB01 live migration completed")
	cont := agentLogTime(b, filepath.Join(k.dir, "agent-"+k.spec.OwnerNode+".log"), "WEB01 resumed")
	return lm, cont.Sub(done).Milliseconds(), wall
}

// agentLogTime is the time of the last line of an agent's log that holds
// what ("15:04:05.000 agent NODE: ..."; the same day).
func agentLogTime(b testing.TB, log, what string) time.Time {
	b.Helper()
	data, err := os.ReadFile(log)
	if err != nil {
		b.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], what) {
			if t, err := time.Parse("15:04:05.000", strings.SplitN(lines[i], " ", 2)[0]); err == nil {
				return t
			}
		}
	}
	b.Fatalf("no %q in %s", what, log)
	return time.Time{}
}
