package kayofs

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Nodes of these tests are separate OS processes (the test binary run
// again as TestLeaseNodeChild) on one image file, so no lock of the kernel
// coordinates them: only the on-disk leases do.

const childEnv = "KAYOFS_LEASE_CHILD"

// testLeaseOpts: short leases so the tests wait seconds, not minutes, yet
// long enough that a loaded test machine (2 cores, many processes) does
// not starve a node's renewals past its timeout.
func testLeaseOpts(logf func(string, ...any)) DiskLeaseOptions {
	return DiskLeaseOptions{Timeout: 3 * time.Second, Margin: time.Second, Renew: 300 * time.Millisecond,
		IOTimeout: 250 * time.Millisecond, Logf: logf}
}

func leasePattern(node string, k int) []byte {
	b := make([]byte, 4096)
	h := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", node, k)))
	for i := range b {
		b[i] = h[i%len(h)]
	}
	return b
}

// TestLeaseNodeChild is a node process of the tests below (it does nothing
// in a normal run).
func TestLeaseNodeChild(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		t.Skip("helper process of the on-disk lease tests")
	}
	node, img := os.Getenv("KAYOFS_NODE"), os.Getenv("KAYOFS_IMG")
	out := bufio.NewWriter(os.Stdout)
	var outMu sync.Mutex // the lease manager logs from its own goroutines
	say := func(f string, a ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(out, f+"\n", a...)
		out.Flush()
	}
	logf := func(f string, a ...any) { say("LOG "+f, a...) }
	dev, err := OpenDeviceDirect(img)
	if err != nil {
		say("FAIL open: %v", err)
		return
	}
	event := func(ev LeaseEvent) {
		say("EVENT %s node=%s peer=%s slot=%d wait=%v replayed=%v why=%s", ev.Kind, ev.Node, ev.Peer, ev.Slot, ev.Wait, ev.Replayed, ev.Why)
	}
	lo := testLeaseOpts(logf)
	lo.OnEvent = event
	v, err := Mount(dev, node, MountOptions{Locks: NewDiskLeases(lo), OnEvent: event})
	if err != nil {
		say("FAIL mount: %v", err)
		return
	}
	say("MOUNTED %d", v.Slot())
	switch mode {
	case "work":
		n, _ := strconv.Atoi(os.Getenv("KAYOFS_ITER"))
		if err := childWork(v, node, n, say); err != nil {
			say("FAIL %v", err)
			return
		}
	case "writer":
		childWriter(v, node, say)
	}
	if err := v.Unmount(); err != nil {
		say("UNMOUNT %v", err)
		return
	}
	say("DONE")
}

func childWork(v *Volume, node string, n int, say func(string, ...any)) error {
	if err := v.MkdirAll("shared"); err != nil {
		return err
	}
	prev := ""
	for k := 0; k < n; k++ {
		name := fmt.Sprintf("shared/%s-%d", node, k)
		f, err := v.Create(name)
		if err != nil {
			return err
		}
		if _, err := f.WriteAt(leasePattern(node, k), 0); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		say("ACK %s %d", name, k)
		switch {
		case k%3 == 2 && prev != "":
			if err := v.Remove(prev); err != nil {
				return err
			}
			say("DEL %s", prev)
		case k%5 == 4:
			if err := v.Rename(name, name+".r"); err != nil {
				return err
			}
			say("REN %s %s", name, name+".r")
			name += ".r"
		}
		prev = name
	}
	return nil
}

// childWriter writes a new file every few milliseconds until its writes
// fail (it fenced itself), then tries a few more.
func childWriter(v *Volume, node string, say func(string, ...any)) {
	refused := 0
	for k := 0; refused < 5; k++ {
		name := fmt.Sprintf("%s-%d", node, k)
		err := func() error {
			f, err := v.Create(name)
			if err != nil {
				return err
			}
			if _, err := f.WriteAt(leasePattern(node, k), 0); err != nil {
				return err
			}
			return f.Sync()
		}()
		if err != nil {
			refused++
			say("REFUSED %s: %v", name, err)
			continue
		}
		say("ACK %s %d", name, k)
		time.Sleep(2 * time.Millisecond)
	}
}

type nodeProc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

func startNode(t *testing.T, mode, node, img string, env ...string) *nodeProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLeaseNodeChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, "KAYOFS_NODE="+node, "KAYOFS_IMG="+img)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &nodeProc{cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.mu.Lock()
			c.lines = append(c.lines, sc.Text())
			c.mu.Unlock()
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		exited := false
		select {
		case <-c.done:
			exited = true
		default:
		}
		_ = cmd.Process.Kill()
		<-c.done
		// A node that ended by itself (not killed by the test) must have
		// passed: under -race a data race in it fails it (exit status 1).
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); exited && ok && !ws.Signaled() && ws.ExitStatus() != 0 {
			t.Errorf("node %s exited with status %d:\n%s", node, ws.ExitStatus(), strings.Join(c.snapshot(), "\n"))
		}
	})
	return c
}

func (c *nodeProc) snapshot() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

func (c *nodeProc) count(prefix string) int {
	n := 0
	for _, l := range c.snapshot() {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

func (c *nodeProc) waitFor(t *testing.T, prefix string, n int, limit time.Duration) {
	t.Helper()
	end := time.Now().Add(limit)
	for c.count(prefix) < n {
		select {
		case <-c.done:
			if c.count(prefix) < n {
				t.Fatalf("node exited before %d %q lines:\n%s", n, prefix, strings.Join(c.snapshot(), "\n"))
			}
		default:
		}
		if time.Now().After(end) {
			t.Fatalf("no %d %q lines after %v:\n%s", n, prefix, limit, strings.Join(c.snapshot(), "\n"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newLeaseImage(t *testing.T) (string, *FileDevice) {
	t.Helper()
	return newLeaseImageVersion(t, 0)
}

// newLeaseImageVersion is newLeaseImage formatted at version (0: the
// current one).
func newLeaseImageVersion(t *testing.T, version int) (string, *FileDevice) {
	t.Helper()
	img := filepath.Join(tmpDir(t), "lun.img")
	d, err := CreateImage(img, 256<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	requireDirectIO(t, img)
	mustFormat(t, d, FormatOptions{Slots: 4, InodeCount: 4096, Version: version})
	return img, d
}

// requireDirectIO skips (fails under CI=true) where the file system of the
// test images refuses O_DIRECT (tmpfs before Linux 6.6).
func requireDirectIO(t testing.TB, img string) {
	t.Helper()
	d, err := OpenDeviceDirect(img)
	if err == nil {
		d.Close()
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("direct I/O on %s: %v (CI must run the on-disk lease tests)", img, err)
	}
	t.Skipf("direct I/O on %s: %v", img, err)
}

// TestDiskLeasesProcessesShareVolume: three node processes create, write,
// fsync, rename and delete files in one directory at the same time under
// on-disk leases; every acknowledged write is there afterwards, nothing
// else is, and the volume checks clean.
func TestDiskLeasesProcessesShareVolume(t *testing.T) {
	img, dev := newLeaseImage(t)
	const iters = 60
	var kids []*nodeProc
	nodes := []string{"N1", "N2", "N3"}
	for _, n := range nodes {
		kids = append(kids, startNode(t, "work", n, img, "KAYOFS_ITER="+strconv.Itoa(iters)))
	}
	want := map[string][]byte{}
	for i, c := range kids {
		<-c.done
		lines := c.snapshot()
		if c.count("DONE") != 1 {
			t.Fatalf("node %s did not finish:\n%s", nodes[i], strings.Join(lines, "\n"))
		}
		for _, l := range lines {
			f := strings.Fields(l)
			switch f[0] {
			case "ACK":
				k, _ := strconv.Atoi(f[2])
				want[f[1]] = leasePattern(nodes[i], k)
			case "DEL":
				delete(want, f[1])
			case "REN":
				want[f[2]] = want[f[1]]
				delete(want, f[1])
			}
		}
	}
	mustCheck(t, dev)
	v := mountLease(t, img, "CHECK", t.Logf)
	defer v.Unmount()
	ents, err := v.ReadDir("shared")
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != len(want) {
		t.Errorf("%d files in shared, %d acknowledged and kept", len(ents), len(want))
	}
	for name, data := range want {
		f, err := v.Open(name)
		if err != nil {
			t.Errorf("acknowledged %s: %v", name, err)
			continue
		}
		got := make([]byte, len(data))
		if _, err := f.ReadAt(got, 0); err != nil && !errors.Is(err, io.EOF) {
			t.Errorf("reading %s: %v", name, err)
		} else if !bytes.Equal(got, data) {
			t.Errorf("%s: content differs from what was acknowledged", name)
		}
	}
}

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

// TestDiskLeasesFrozenNodeFencesItself: a writing node is frozen (SIGSTOP)
// past its lease; another node waits for the lease to expire plus the
// margin (and says so), takes the metadata lease, replays the frozen
// node's journal and unmounts. Resumed (SIGCONT), the frozen node's writes
// all fail: its log says it fenced itself, the image is byte for byte what
// the survivor left, and it checks clean with every write the frozen node
// acknowledged before the freeze.
func TestDiskLeasesFrozenNodeFencesItself(t *testing.T) {
	img, dev := newLeaseImage(t)
	a := startNode(t, "writer", "A", img)
	a.waitFor(t, "ACK", 20, 30*time.Second)
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	acked := a.snapshot()

	var logMu sync.Mutex
	var blog []string
	logf := func(f string, args ...any) {
		logMu.Lock()
		blog = append(blog, fmt.Sprintf(f, args...))
		logMu.Unlock()
		t.Logf("B: "+f, args...)
	}
	bdev, err := OpenDeviceDirect(img)
	if err != nil {
		t.Fatal(err)
	}
	defer bdev.Close()
	var bev []LeaseEvent
	onEvent := func(ev LeaseEvent) {
		logMu.Lock()
		bev = append(bev, ev)
		logMu.Unlock()
	}
	lo := testLeaseOpts(logf)
	lo.OnEvent = onEvent
	b, err := Mount(bdev, "B", MountOptions{Locks: NewDiskLeases(lo), OnEvent: onEvent})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Mkdir("after"); err != nil {
		t.Fatal(err)
	}
	logMu.Lock()
	checkTakeoverEvents(t, bev, "B", "A", lo)
	logMu.Unlock()
	if err := b.Fenced(); err != nil {
		t.Fatalf("B fenced: %v", err)
	}
	took := time.Since(frozen)
	if err := b.Unmount(); err != nil {
		t.Fatal(err)
	}
	t.Logf("B unmounted %v after A froze", time.Since(frozen))
	logMu.Lock()
	said := strings.Join(blog, "\n")
	logMu.Unlock()
	if !strings.Contains(said, "is dead") || !strings.Contains(said, "safety margin") {
		t.Fatalf("B took over without saying it waited for A's lease to expire:\n%s", said)
	}
	t.Logf("B mounted and wrote %v after A froze", took)
	before := fileHash(t, img)

	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	<-a.done
	lines := a.snapshot()
	out := strings.Join(lines, "\n")
	t.Logf("A resumed %v ago; its output:\n%s", time.Since(frozen), strings.Join(lines[len(acked):], "\n"))
	// An ACK printed after SIGCONT is a write that returned before the
	// freeze but was reported after it (SIGSTOP between the write and the
	// print): it must already be in the image B recovered — unchanged
	// since (the hash below) and checked with the others at the end.
	// A write after the resume would change the image.
	if n := a.count("ACK") - countPrefix(acked, "ACK"); n != 0 {
		t.Logf("A reported %d writes after it resumed; each must be in the image as B left it", n)
	}
	acked = lines
	if a.count("REFUSED") == 0 || !strings.Contains(out, "fenced itself") {
		t.Errorf("A's log does not show it fenced itself:\n%s", out)
	}
	if a.count("EVENT fenced node=A ") != 1 {
		t.Errorf("A did not report its fence as one LeaseFenced event:\n%s", out)
	}
	if fileHash(t, img) != before {
		t.Errorf("the image changed after A resumed: A wrote to the volume after losing its lease\n%s", out)
	}
	mustCheck(t, dev)
	v := mountLease(t, img, "CHECK", t.Logf)
	defer v.Unmount()
	for _, l := range acked {
		f := strings.Fields(l)
		if len(f) < 3 || f[0] != "ACK" {
			continue
		}
		k, _ := strconv.Atoi(f[2])
		fh, err := v.Open(f[1])
		if err != nil {
			t.Errorf("A's acknowledged %s: %v", f[1], err)
			continue
		}
		got := make([]byte, 4096)
		if _, err := fh.ReadAt(got, 0); err != nil && !errors.Is(err, io.EOF) || !bytes.Equal(got, leasePattern("A", k)) {
			t.Errorf("A's acknowledged %s: content lost (%v)", f[1], err)
		}
	}
}

// checkTakeoverEvents: node reported, in order, that it waits for peer's
// lease (less than lease + margin left) and that it recovered peer's slot.
func checkTakeoverEvents(t *testing.T, evs []LeaseEvent, node, peer string, o DiskLeaseOptions) {
	t.Helper()
	wait, rec := -1, -1
	for i, ev := range evs {
		t.Logf("%s's event: %+v", node, ev)
		switch {
		case ev.Node != node:
			t.Errorf("event of %s reported to %s: %+v", ev.Node, node, ev)
		case ev.Kind == LeaseRecoveryWait && ev.Peer == peer && wait < 0:
			wait = i
			if ev.Wait <= 0 || ev.Wait >= o.Timeout+o.Margin || ev.Lease != o.Timeout || ev.Margin != o.Margin {
				t.Errorf("recovery wait %v (lease %v, margin %v): want 0 < wait < %v", ev.Wait, ev.Lease, ev.Margin, o.Timeout+o.Margin)
			}
		case ev.Kind == LeaseRecovered && ev.Peer == peer && rec < 0:
			rec = i
			if ev.Slot < 0 {
				t.Errorf("recovered event names no slot: %+v", ev)
			}
		}
	}
	if wait < 0 || rec < 0 || rec < wait {
		t.Errorf("%s's events: want a %s wait for %s, then its %s slot; got wait at %d, recovered at %d", node, LeaseRecoveryWait, peer, LeaseRecovered, wait, rec)
	}
}

func countPrefix(lines []string, p string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, p) {
			n++
		}
	}
	return n
}

func mountLease(t testing.TB, img, node string, logf func(string, ...any)) *Volume {
	t.Helper()
	d, err := OpenDeviceDirect(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	v, err := Mount(d, node, MountOptions{Locks: NewDiskLeases(testLeaseOpts(logf))})
	if err != nil {
		t.Fatalf("mount %s: %v", node, err)
	}
	return v
}

// TestDiskLeasesKilledNodeRecovered: a node process is killed (SIGKILL,
// the power cut of one host) while another works on the same volume; the
// survivor takes over only after the dead node's lease expired (and says
// so), finishes its work, and the volume checks clean with every write
// either node acknowledged.
func TestDiskLeasesKilledNodeRecovered(t *testing.T) {
	img, dev := newLeaseImage(t)
	a := startNode(t, "writer", "A", img)
	a.waitFor(t, "ACK", 10, 30*time.Second)
	b := startNode(t, "work", "B", img, "KAYOFS_ITER=200")
	b.waitFor(t, "ACK", 5, 30*time.Second)
	// kill A while it holds the metadata lease (stopped, then checked on
	// disk), so B must take it over from a dead host
	for tries := 0; ; tries++ {
		if tries == 1000 || a.count("DONE") > 0 || b.count("DONE") > 0 {
			t.Fatal("never caught A holding the metadata lease while B worked")
		}
		if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		if metaHolder(t, dev) == "A" {
			break
		}
		if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-a.done
	<-b.done
	blines := b.snapshot()
	bout := strings.Join(blines, "\n")
	if b.count("DONE") != 1 {
		t.Fatalf("B did not finish:\n%s", bout)
	}
	if !strings.Contains(bout, "is dead") || !strings.Contains(bout, "safety margin") {
		t.Errorf("B's log does not say it waited for A's lease to expire:\n%s", bout)
	}
	if b.count("EVENT recovery_wait node=B peer=A ") != 1 || b.count("EVENT recovered node=B peer=A ") != 1 {
		t.Errorf("B did not report one wait for A's lease and one recovery of A's slot:\n%s", bout)
	}
	mustCheck(t, dev)
	v := mountLease(t, img, "CHECK", t.Logf)
	defer v.Unmount()
	verify := func(node string, lines []string, renames bool) {
		want := map[string][]byte{}
		for _, l := range lines {
			f := strings.Fields(l)
			switch f[0] {
			case "ACK":
				k, _ := strconv.Atoi(f[2])
				want[f[1]] = leasePattern(node, k)
			case "DEL":
				delete(want, f[1])
			case "REN":
				want[f[2]] = want[f[1]]
				delete(want, f[1])
			}
		}
		for name, d := range want {
			fh, err := v.Open(name)
			if err != nil {
				t.Errorf("%s's acknowledged %s: %v", node, name, err)
				continue
			}
			got := make([]byte, len(d))
			if _, err := fh.ReadAt(got, 0); err != nil && !errors.Is(err, io.EOF) || !bytes.Equal(got, d) {
				t.Errorf("%s's acknowledged %s: content lost (%v)", node, name, err)
			}
		}
		t.Logf("%s: %d acknowledged files verified", node, len(want))
	}
	verify("A", a.snapshot(), false)
	verify("B", blines, true)
}

// metaHolder names the node holding the metadata (version 4: namespace) lease ("" when free).
func metaHolder(t *testing.T, dev Device) string {
	t.Helper()
	sb, err := ReadSuperblock(dev)
	if err != nil {
		t.Fatal(err)
	}
	base := int64(sb.leaseStart()) * int64(sb.BlockSize)
	b := make([]byte, recSize)
	rec := int64(recLeader)
	if sb.LeaseDomains() {
		rec = recLeader4 + ldNS // the namespace's, every node's turn
	}
	if _, err := dev.ReadAt(b, base+rec*recSize); err != nil {
		t.Fatal(err)
	}
	ld, err := decLeader(b, sb.UUID)
	if err != nil || ld.Free || ld.Owner == 0 {
		return ""
	}
	if _, err := dev.ReadAt(b, base+int64(recDelta(ld.Owner-1))*recSize); err != nil {
		t.Fatal(err)
	}
	r, err := decDelta(b, sb.UUID)
	if err != nil || r.Gen != ld.Gen {
		return ""
	}
	return r.Node
}

// TestDiskLeasesRecoverAllAfterKill: kayoctl's recovery path with on-disk
// leases. A node process is killed; RecoverAll (a tool, no mount) frees its
// slot only once it has watched the node's lease expire (and says so), and
// the slot is free afterwards with every acknowledged write in place.
func TestDiskLeasesRecoverAllAfterKill(t *testing.T) {
	img, dev := newLeaseImage(t)
	a := startNode(t, "writer", "A", img)
	a.waitFor(t, "ACK", 10, 30*time.Second)
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-a.done
	var mu sync.Mutex
	var said []string
	logf := func(f string, args ...any) {
		mu.Lock()
		said = append(said, fmt.Sprintf(f, args...))
		mu.Unlock()
	}
	dd, err := OpenDeviceDirect(img)
	if err != nil {
		t.Fatal(err)
	}
	defer dd.Close()
	opts := MountOptions{Locks: NewDiskLeases(testLeaseOpts(logf))}
	done, err := RecoverAll(dd, opts)
	if err != nil {
		t.Fatal(err)
	}
	var aslot int
	if _, err := fmt.Sscanf(a.snapshot()[0], "MOUNTED %d", &aslot); err != nil {
		t.Fatalf("A's first line %q: %v", a.snapshot()[0], err)
	}
	if !slices.Contains(done, aslot) {
		t.Fatalf("recovered slots %v, not A's slot %d", done, aslot)
	}
	mu.Lock()
	log := strings.Join(said, "\n")
	mu.Unlock()
	if !strings.Contains(log, "is dead") || !strings.Contains(log, "safety margin") {
		t.Errorf("recovery did not say it waited for A's lease to expire:\n%s", log)
	}
	infos, err := Slots(dd, opts)
	if err != nil {
		t.Fatal(err)
	}
	if infos[aslot].State != "free" {
		t.Errorf("A's slot %d after recovery: %+v", aslot, infos[aslot])
	}
	mustCheck(t, dev)
	v := mountLease(t, img, "CHECK", t.Logf)
	defer v.Unmount()
	for _, l := range a.snapshot() {
		f := strings.Fields(l)
		if f[0] != "ACK" {
			continue
		}
		k, _ := strconv.Atoi(f[2])
		fh, err := v.Open(f[1])
		if err != nil {
			t.Errorf("A's acknowledged %s: %v", f[1], err)
			continue
		}
		got := make([]byte, 4096)
		if _, err := fh.ReadAt(got, 0); err != nil && !errors.Is(err, io.EOF) || !bytes.Equal(got, leasePattern("A", k)) {
			t.Errorf("A's acknowledged %s: content lost (%v)", f[1], err)
		}
	}
}
