package kayotorture

import (
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor/qemu"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs/etcdlock"
	"github.com/kayo-labs/terraform-provider-kayo/internal/etcdtest"
	"github.com/kayo-labs/terraform-provider-kayo/internal/qemutest"
	"github.com/kayo-labs/terraform-provider-kayo/internal/santest"
)

// The rig: QEMU guests (TCG), each a kernel of its own, share one raw LUN
// image (cache=none, share-rw=on, no image locking), as hosts share a SAN
// LUN. Each runs the guest binary (guestbin) as its own Kayo FS node; the
// host reads their consoles, and verifies the volume once they are gone.

// leaseSecs is the guests' lease timeout: long enough that guests starved
// of CPU on a loaded 2-core machine keep renewing.
const leaseSecs = 8

// tortureSeconds is how long each guest runs the workload
// (KAYO_TORTURE_SECONDS; short by default for CI).
func tortureSeconds() int {
	if n, err := strconv.Atoi(os.Getenv("KAYO_TORTURE_SECONDS")); err == nil && n > 0 {
		return n
	}
	return 20
}

// tortureGuests is the guest count (KAYO_TORTURE_GUESTS, default 2).
func tortureGuests() int {
	if n, err := strconv.Atoi(os.Getenv("KAYO_TORTURE_GUESTS")); err == nil && n > 1 {
		return n
	}
	return 2
}

type rig struct {
	t      *testing.T
	qemu   string
	kernel string
	initrd string
	img    string
	dir    string
	san    *santest.Server // nil: every guest opens img itself
}

// useSAN serves the image to the guests through a SAN double that can
// fence a host (internal/santest), and has them fence a host they take
// for dead before they recover it.
func (r *rig) useSAN() {
	r.t.Helper()
	s, err := santest.Start(r.img)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = s.Close() })
	r.san = s
}

var buildOnce struct {
	sync.Mutex
	kernel, initrd string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	bin, err := qemu.Binary()
	if err != nil {
		qemutest.SkipOrFail(t, err)
	}
	buildOnce.Lock()
	defer buildOnce.Unlock()
	if buildOnce.kernel == "" {
		root := qemutest.RepoRoot()
		out := filepath.Join(root, "guest", "out", "torture")
		gb := filepath.Join(out, "kayo-torture")
		cmd := exec.Command("go", "build", "-ldflags=-s -w", "-o", gb, "./internal/kayotorture/guestbin")
		cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building the torture binary: %v: %s", err, b)
		}
		if b, err := exec.Command(filepath.Join(root, "guest", "torture.sh"), out, gb).CombinedOutput(); err != nil {
			qemutest.SkipOrFail(t, fmt.Errorf("building the torture guest (needs linux-image-amd64, busybox-static, cpio): %v: %s", err, b))
		}
		buildOnce.kernel, buildOnce.initrd = filepath.Join(out, "vmlinuz"), filepath.Join(out, "torture.img")
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "lun.img")
	d, err := kayofs.CreateImage(img, 512<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := kayofs.Format(d, kayofs.FormatOptions{Slots: 8, InodeCount: 8192}); err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, qemu: bin, kernel: buildOnce.kernel, initrd: buildOnce.initrd, img: img, dir: dir}
}

type guest struct {
	node string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// start boots a guest as node with the workload running secs seconds.
func (r *rig) start(node, locks, etcd string, secs int) *guest {
	r.t.Helper()
	log := filepath.Join(r.dir, node+".console")
	// no_timer_check: a TCG guest on a loaded host can fail the IO-APIC timer check and panic at boot
	app := fmt.Sprintf("console=ttyS0 panic=-1 quiet no_timer_check kayo.node=%s kayo.secs=%d kayo.locks=%s kayo.lease=%d kayo.seed=%d",
		node, secs, locks, leaseSecs, len(node)*7919+int(node[len(node)-1]))
	args := []string{"-name", node, "-accel", "tcg", "-m", "384", "-smp", "1", "-nodefaults", "-display", "none", "-no-reboot",
		"-kernel", r.kernel, "-initrd", r.initrd, "-serial", "file:" + log,
		"-device", "virtio-blk-pci,drive=lun,share-rw=on"}
	if r.san == nil {
		args = append(args, "-drive", "file="+r.img+",format=raw,if=none,id=lun,cache=none,file.locking=off")
	} else {
		args = append(args, "-drive", "file="+r.san.DriveFile(node)+",format=raw,if=none,id=lun,cache=none")
		app += fmt.Sprintf(" kayo.san=10.0.2.2:%d", r.san.ControlPort())
	}
	if etcd != "" {
		app += " kayo.etcd=" + etcd
	}
	if etcd != "" || r.san != nil {
		app += " kayo.net=1"
		args = append(args, "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0")
	}
	args = append(args, "-append", app)
	cmd := exec.Command(r.qemu, args...)
	qlog, err := os.Create(filepath.Join(r.dir, node+".qemu"))
	if err != nil {
		r.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = qlog, qlog
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	g := &guest{node: node, cmd: cmd, log: log, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); qlog.Close(); close(g.done) }()
	r.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		<-g.done
		if r.t.Failed() {
			r.t.Logf("%s console:\n%s", node, tail(g.console(), 4000))
		}
	})
	return g
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

func (g *guest) console() string {
	b, _ := os.ReadFile(g.log)
	return string(b)
}

func (g *guest) count(s string) int { return strings.Count(g.console(), s) }

// waitFor waits until the console holds n lines containing s.
func (g *guest) waitFor(t *testing.T, s string, n int, limit time.Duration) time.Time {
	t.Helper()
	end := time.Now().Add(limit)
	for g.count(s) < n {
		if time.Now().After(end) {
			t.Fatalf("%s: no %d lines with %q after %v:\n%s", g.node, n, s, limit, tail(g.console(), 4000))
		}
		select {
		case <-g.done:
			if g.count(s) < n {
				t.Fatalf("%s ended before %d lines with %q:\n%s", g.node, n, s, tail(g.console(), 4000))
			}
		case <-time.After(100 * time.Millisecond):
		}
	}
	return time.Now()
}

func (g *guest) wait(t *testing.T, limit time.Duration) {
	t.Helper()
	select {
	case <-g.done:
	case <-time.After(limit):
		t.Fatalf("%s still running after %v:\n%s", g.node, limit, tail(g.console(), 4000))
	}
}

func (g *guest) parse(t *testing.T) *NodeLog {
	t.Helper()
	l, err := ParseLog(strings.NewReader(g.console()))
	if err != nil {
		t.Fatal(err)
	}
	if l.Node == "" {
		l.Node = g.node
	}
	return l
}

// verify mounts the volume on the host as one more node (on-disk leases:
// the guests' leases are judged as any node judges them), checks every
// acknowledged operation, unmounts and checks the volume.
func (r *rig) verify(logs []*NodeLog) string {
	r.t.Helper()
	return r.verifyWith(logs, kayofs.NewDiskLeases(kayofs.DiskLeaseOptions{Timeout: leaseSecs * time.Second, Logf: r.t.Logf}))
}

func (r *rig) verifyWith(logs []*NodeLog, locks kayofs.LockManagerFactory) string {
	r.t.Helper()
	d, err := kayofs.OpenDeviceDirect(r.img)
	if err != nil {
		r.t.Fatal(err)
	}
	defer d.Close()
	v, err := kayofs.Mount(d, "verifier", kayofs.MountOptions{Locks: locks})
	if err != nil {
		r.t.Fatalf("host mount for verification: %v", err)
	}
	sum, verr := Verify(v, logs)
	if err := v.Unmount(); err != nil {
		r.t.Fatal(err)
	}
	if verr != nil {
		r.t.Fatalf("verification: %v", verr)
	}
	probs, err := kayofs.Check(d)
	if err != nil || len(probs) > 0 {
		r.t.Fatalf("kayofs check: %v %v", probs, err)
	}
	return sum
}

// blockSums sums the image block by block (4 KiB), so that a change
// names where it is.
func (r *rig) blockSums() []uint64 {
	r.t.Helper()
	f, err := os.Open(r.img)
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	var sums []uint64
	b := make([]byte, 1<<20)
	for {
		n, err := io.ReadFull(f, b)
		for i := 0; i+4096 <= n; i += 4096 {
			h := fnv.New64a()
			h.Write(b[i : i+4096])
			sums = append(sums, h.Sum64())
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return sums
		}
		if err != nil {
			r.t.Fatal(err)
		}
	}
}

// changedRegions names the regions of the blocks that differ.
func (r *rig) changedRegions(before, after []uint64) []string {
	r.t.Helper()
	sb, _, err := kayofs.SuperblockOf(r.img)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []string
	for i := range min(len(before), len(after)) {
		if before[i] != after[i] {
			out = append(out, fmt.Sprintf("block %d (%s)", i, sb.RegionOf(int64(i)*4096)))
		}
	}
	return out
}

// bootLimit bounds a TCG guest's boot, mount and workload on a loaded
// machine.
func bootLimit(secs int) time.Duration { return time.Duration(secs)*time.Second + 4*time.Minute }

// runAll runs guests to the end and verifies (with hostLocks, the lock
// manager the guests used).
func runAll(t *testing.T, locks, etcd string, hostLocks kayofs.LockManagerFactory) {
	r := newRig(t)
	secs := tortureSeconds()
	var gs []*guest
	for i := range tortureGuests() {
		gs = append(gs, r.start(fmt.Sprintf("G%d", i+1), locks, etcd, secs))
	}
	var logs []*NodeLog
	for _, g := range gs {
		g.wait(t, bootLimit(secs))
		l := g.parse(t)
		if !l.Done {
			t.Fatalf("%s did not finish its workload:\n%s", g.node, tail(g.console(), 4000))
		}
		logs = append(logs, l)
	}
	if hostLocks == nil {
		hostLocks = kayofs.NewDiskLeases(kayofs.DiskLeaseOptions{Timeout: leaseSecs * time.Second, Logf: t.Logf})
	}
	t.Logf("%d guests, %d s each, %s locks: %s", len(gs), secs, locks, r.verifyWith(logs, hostLocks))
}

var deadLine = regexp.MustCompile(`host \d+ \((\S+), generation \d+\) is dead: its lease has not changed for (\S+) \(timeout (\S+) \+ safety margin (\S+)\); recovering it`)

// recoveredAfter finds the survivor's line saying it recovers node and
// checks the lease's silence it reports covers timeout and margin.
func recoveredAfter(t *testing.T, survivor *guest, node string) {
	t.Helper()
	for _, m := range deadLine.FindAllStringSubmatch(survivor.console(), -1) {
		if m[1] != node {
			continue
		}
		silent, err1 := time.ParseDuration(m[2])
		to, err2 := time.ParseDuration(m[3])
		mg, err3 := time.ParseDuration(m[4])
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatalf("bad recovery line %q", m[0])
		}
		if silent < to+mg {
			t.Fatalf("%s recovered %s after its lease was silent %v, less than timeout %v + margin %v", survivor.node, node, silent, to, mg)
		}
		t.Logf("%s: %s", survivor.node, m[0])
		return
	}
	t.Fatalf("%s never said it recovered %s:\n%s", survivor.node, node, tail(survivor.console(), 4000))
}

// TestTortureDiskLeases: guests share the LUN under on-disk leases only.
func TestTortureDiskLeases(t *testing.T) { runAll(t, "disk", "", nil) }

// TestTortureEtcd: guests share the LUN under the etcd lock manager, on an
// etcd on the host's loopback that they reach through QEMU's user-mode
// network (the host is 10.0.2.2 there).
func TestTortureEtcd(t *testing.T) {
	if _, err := qemu.Binary(); err != nil {
		qemutest.SkipOrFail(t, err)
	}
	c := etcdtest.Start(t, etcdtest.Options{})
	ep := c.Endpoints()[0]
	guestEP := strings.Replace(ep, "127.0.0.1", "10.0.2.2", 1)
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	runAll(t, "etcd", guestEP, etcdlock.New(etcdlock.Options{Client: cli, TTL: leaseSecs * time.Second, Logf: t.Logf}))
}

// TestTorturePowerCut: one guest's QEMU is killed (SIGKILL) in the middle
// of its workload; the others recover its journal only after its lease
// expired (their own logs say how long it was silent, and the host saw
// them do it no sooner), finish, and every acknowledged write of all
// three, the dead one's included, is there.
func TestTorturePowerCut(t *testing.T) {
	r := newRig(t)
	secs := tortureSeconds() + 3*leaseSecs
	var gs []*guest
	for i := range tortureGuests() {
		gs = append(gs, r.start(fmt.Sprintf("G%d", i+1), "disk", "", secs))
	}
	victim := gs[0]
	for _, g := range gs {
		g.waitFor(t, "KT ACK", 5, bootLimit(0))
	}
	victim.waitFor(t, "KT ACK", 20, time.Minute)
	killed := time.Now()
	_ = victim.cmd.Process.Kill()
	<-victim.done
	logs := []*NodeLog{victim.parse(t)}
	for _, g := range gs[1:] {
		seen := g.waitFor(t, "("+victim.node+", generation", 1, 2*time.Minute)
		if d := seen.Sub(killed); d < leaseSecs*time.Second {
			t.Fatalf("%s recovered %s %v after the power cut, before its lease (%d s) expired", g.node, victim.node, d, leaseSecs)
		}
		recoveredAfter(t, g, victim.node)
	}
	for _, g := range gs[1:] {
		g.wait(t, bootLimit(secs))
		l := g.parse(t)
		if !l.Done {
			t.Fatalf("%s did not finish its workload:\n%s", g.node, tail(g.console(), 4000))
		}
		logs = append(logs, l)
	}
	t.Logf("power cut of %s after %d acknowledged operations: %s", victim.node, logs[0].Acked(), r.verify(logs))
}

// TestTortureFreeze: one guest's QEMU is stopped (SIGSTOP) past its lease;
// the other fences it at the SAN, recovers it and finishes; then the
// frozen one resumes (SIGCONT). It must not write again: the image is
// unchanged by it, and its own console says its lease was lost (ErrFenced)
// and its writes were refused. SIGSTOP freezes the guest's QEMU, its
// storage path, too: a write issued before the freeze goes out after the
// resume, and only the SAN can refuse it (kayofs.DiskLeaseOptions.FenceHost).
func TestTortureFreeze(t *testing.T) {
	r := newRig(t)
	r.useSAN()
	secs := tortureSeconds() + 3*leaseSecs
	frozen := r.start("G1", "disk", "", secs)
	other := r.start("G2", "disk", "", secs)
	frozen.waitFor(t, "KT ACK", 20, bootLimit(0))
	other.waitFor(t, "KT ACK", 5, bootLimit(0))
	if err := frozen.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	seen := other.waitFor(t, "("+frozen.node+", generation", 1, 2*time.Minute)
	if d := seen.Sub(stopped); d < leaseSecs*time.Second {
		t.Fatalf("%s recovered %s %v after the freeze, before its lease (%d s) expired", other.node, frozen.node, d, leaseSecs)
	}
	recoveredAfter(t, other, frozen.node)
	other.wait(t, bootLimit(secs))
	before := r.blockSums()
	if err := frozen.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	frozen.wait(t, 2*time.Minute)
	if ch := r.changedRegions(before, r.blockSums()); len(ch) > 0 {
		t.Fatalf("the image changed after %s resumed: it wrote after losing its lease: %s\n%s", frozen.node, strings.Join(ch, ", "), tail(frozen.console(), 4000))
	}
	con := frozen.console()
	if !strings.Contains(con, "KT FENCED") || !strings.Contains(con, kayofs.ErrFenced.Error()) {
		t.Fatalf("%s's console does not say it fenced itself:\n%s", frozen.node, tail(con, 4000))
	}
	refusedByFence := 0
	for _, l := range strings.Split(con, "\n") {
		if strings.Contains(l, "KT REFUSED") && strings.Contains(l, kayofs.ErrFenced.Error()) {
			refusedByFence++
		}
	}
	if refusedByFence < 3 || strings.Contains(con, "<nil>") {
		t.Fatalf("%s after the resume: %d writes refused by its own fence (want 3, none accepted):\n%s", frozen.node, refusedByFence, tail(con, 4000))
	}
	ol := other.parse(t)
	if !ol.Done {
		t.Fatalf("%s did not finish:\n%s", other.node, tail(other.console(), 4000))
	}
	fenced, refused := r.san.Fenced(frozen.node)
	if !fenced {
		t.Fatalf("%s recovered %s without fencing it at the SAN", other.node, frozen.node)
	}
	t.Logf("frozen %s (the SAN refused %d of its writes on connections open at its fence): %s", frozen.node, refused, r.verify([]*NodeLog{frozen.parse(t), ol}))
}
