package kayofs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary re-executes itself as a "node" process (KAYOFS_CHILD=1):
// it formats (optionally), mounts, and runs random file operations,
// printing "BEGIN ..." before and "ACK" after each one. A crash is either a
// SIGKILL from the parent after a random delay or, deterministically, a
// SIGKILL the child sends itself in the middle of its N-th device write
// (after writing only half of it: a torn write).
func TestMain(m *testing.M) {
	if os.Getenv("KAYOFS_CHILD") == "1" {
		childMain()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type killDevice struct {
	*FileDevice
	left int
}

func (d *killDevice) WriteAt(p []byte, off int64) (int, error) {
	d.left--
	if d.left == 0 {
		d.FileDevice.WriteAt(p[:len(p)/2], off)
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	return d.FileDevice.WriteAt(p, off)
}

func envInt(k string) int { n, _ := strconv.Atoi(os.Getenv(k)); return n }

func childMain() {
	die := func(f string, a ...any) {
		fmt.Printf("ERROR "+f+"\n", a...)
		os.Exit(3)
	}
	fd, err := OpenDevice(os.Getenv("KAYOFS_IMG"))
	if err != nil {
		die("%v", err)
	}
	var dev Device = fd
	if n := envInt("KAYOFS_KILL_AFTER"); n > 0 {
		dev = &killDevice{FileDevice: fd, left: n}
	}
	if os.Getenv("KAYOFS_FORMAT") == "1" {
		if _, err := Format(dev, FormatOptions{Slots: 2, Force: true, Size: int64(envInt("KAYOFS_FORMAT_SIZE"))}); err != nil {
			die("format: %v", err)
		}
		fmt.Println("FORMATTED")
	}
	node := os.Getenv("KAYOFS_NODE")
	v, err := Mount(dev, node)
	if err != nil {
		die("mount: %v", err)
	}
	fmt.Printf("MOUNTED %d\n", v.Slot())
	own := node + ".vhd"
	f, err := v.Open(own)
	if errors.Is(err, ErrNotExist) {
		fmt.Printf("BEGIN %s C 0 0 0\n", own)
		f, err = v.Create(own)
		fmt.Println("ACK")
	}
	if err != nil {
		die("open: %v", err)
	}
	var sh *File
	region := envInt("KAYOFS_REGION") // ≥1: also write region-1 of shared.vhd
	if region > 0 {
		if sh, err = v.Open("shared.vhd"); err != nil {
			die("open shared: %v", err)
		}
	}
	seed := int64(envInt("KAYOFS_SEED"))
	rng := rand.New(rand.NewSource(seed))
	crashy := os.Getenv("KAYOFS_CRASHY") == "1"
	grow := os.Getenv("KAYOFS_GROW") == "1"
	tree := os.Getenv("KAYOFS_TREE") == "1" // small writes all over 32 MiB: extent trees
	span, maxW := int64(4<<20), 64<<10
	if tree {
		span, maxW = 32<<20, 2048
	}
	if tree {
		fmt.Printf("BEGIN %s A %d 0 0\n", own, span)
		if err := f.Allocate(span); err != nil {
			die("allocate: %v", err)
		}
		fmt.Println("ACK")
		// one small write into every other cluster: about two extents each,
		// past the inline limit (an extent tree) within ~90 writes
		if in, err := f.Stat(); err == nil && in.Size == span {
			for c := int64(0); c < 100; c++ {
				ps := seed*100000 + 90000 + c
				fmt.Printf("BEGIN %s W %d %d %d\n", own, c*2*65536+100, 64, ps)
				if _, err := f.WriteAt(pattern(own, ps, 64), c*2*65536+100); err != nil {
					die("write: %v", err)
				}
				fmt.Println("ACK")
			}
		}
	}
	for i := 0; i < envInt("KAYOFS_OPS"); i++ {
		ps := seed*100000 + int64(i)
		if grow && rng.Intn(6) == 0 {
			sb := v.Superblock()
			var err error
			if rng.Intn(3) == 0 && sb.SlotCount < MaxSlots {
				fmt.Printf("BEGIN - S %d 0 0\n", sb.SlotCount+1)
				err = v.AddSlots(1)
			} else {
				to := min(dev.Size(), sb.Size()+int64(1+rng.Intn(24))<<20)
				fmt.Printf("BEGIN - G %d 0 0\n", to)
				err = v.Grow(to)
			}
			if err != nil {
				die("grow: %v", err)
			}
			fmt.Println("ACK")
			sb = v.Superblock()
			fmt.Printf("GREW %d %d\n", sb.Size(), sb.SlotCount)
			continue
		}
		switch x := rng.Intn(20); {
		case x < 14:
			off, n := rng.Int63n(span), rng.Intn(maxW)+1
			fmt.Printf("BEGIN %s W %d %d %d\n", own, off, n, ps)
			if _, err := f.WriteAt(pattern(own, ps, n), off); err != nil {
				die("write: %v", err)
			}
		case x < 16 && sh != nil:
			const rs = 1 << 20
			n := rng.Intn(32<<10) + 1
			off := int64(region-1)*rs + rng.Int63n(rs-int64(n))
			fmt.Printf("BEGIN shared.vhd W %d %d %d\n", off, n, ps)
			if _, err := sh.WriteAt(pattern("shared.vhd", ps, n), off); err != nil {
				die("shared write: %v", err)
			}
		case x < 17:
			sz := rng.Int63n(span * 3 / 2)
			fmt.Printf("BEGIN %s A %d 0 0\n", own, sz)
			if err := f.Allocate(sz); err != nil {
				die("allocate: %v", err)
			}
		case x < 18 && crashy:
			sz := rng.Int63n(span * 5 / 4)
			if tree {
				sz = span/2 + rng.Int63n(span*3/4)
			}
			fmt.Printf("BEGIN %s T %d 0 0\n", own, sz)
			if err := f.Truncate(sz); err != nil {
				die("truncate: %v", err)
			}
		case x < 19:
			// a VM's directory made and removed whole (CreateFiles, RemoveDir)
			dir := fmt.Sprintf("vms/%s-%d", node, rng.Intn(3))
			fmt.Printf("BEGIN %s X 0 0 0\n", dir)
			v.MkdirAll("vms")
			_, err := v.CreateFiles(dir, []NewFile{{Name: "a.vhd", Data: pattern(dir, ps, 22528)},
				{Name: "a.xml", Data: pattern(dir, ps+1, 2048)}, {Name: "b", Allocate: 1 << 20, Off: 1 << 20, Data: []byte("footer")}})
			if errors.Is(err, ErrExist) {
				err = v.RemoveDir(dir)
			}
			if err != nil {
				die("vm dir %s: %v", dir, err)
			}
		default:
			aux := fmt.Sprintf("aux/%s-%d", node, rng.Intn(4))
			fmt.Printf("BEGIN %s X 0 0 0\n", aux)
			v.MkdirAll("aux")
			if g, err := v.Create(aux); err == nil {
				g.WriteAt(pattern(aux, ps, 10000), rng.Int63n(100000))
			} else if errors.Is(err, ErrExist) {
				if err := v.Rename(aux, aux+".old"); err != nil {
					die("rename: %v", err)
				}
				if err := v.Remove(aux + ".old"); err != nil {
					die("remove: %v", err)
				}
			} else {
				die("create aux: %v", err)
			}
		}
		fmt.Println("ACK")
	}
	if err := v.Unmount(); err != nil {
		die("unmount: %v", err)
	}
	fmt.Println("DONE")
}

// fileModel is what a file must contain given the acknowledged operations.
type fileModel struct {
	data      []byte
	known     []bool
	size      int64
	sizeKnown bool
}

func newModel() *fileModel { return &fileModel{sizeKnown: true} }

func (m *fileModel) grow(n int64) {
	if int64(len(m.data)) < n {
		m.known = append(m.known, trueSlice(int(n-int64(len(m.data))))...)
		m.data = append(m.data, make([]byte, n-int64(len(m.data)))...)
	}
}

// apply an operation; inFlight means it began but was never acknowledged.
func (m *fileModel) apply(name, op string, a, b, seed int64, inFlight bool) {
	switch op {
	case "W":
		m.grow(a + b)
		copy(m.data[a:], pattern(name, seed, int(b)))
		for i := a; i < a+b; i++ {
			m.known[i] = !inFlight
		}
		if inFlight {
			m.sizeKnown = false
		}
		m.size = max(m.size, a+b)
	case "A":
		m.grow(a)
		if inFlight {
			m.sizeKnown = false
		}
		m.size = max(m.size, a)
	case "T":
		if a < m.size {
			if a < int64(len(m.data)) {
				clear(m.data[a:])
				if inFlight {
					clear(m.known[a:])
				}
			}
		}
		m.grow(a)
		if inFlight {
			m.sizeKnown = false
		}
		m.size = a
	}
}

func (m *fileModel) verify(t *testing.T, v *Volume, name string) {
	t.Helper()
	f, err := v.Open(name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	sz, err := f.Size()
	if err != nil {
		t.Fatal(err)
	}
	if m.sizeKnown && sz != m.size {
		t.Fatalf("%s: size %d, acknowledged %d", name, sz, m.size)
	}
	got := make([]byte, max(sz, int64(len(m.data))))
	if _, err := f.ReadAt(got[:sz], 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	lim := min(int64(len(m.data)), m.size, sz)
	if bytes.Equal(got[:lim], m.data[:lim]) {
		return
	}
	for i := int64(0); i < lim; i++ {
		if m.known[i] && got[i] != m.data[i] {
			t.Fatalf("%s: byte %d is %#x, acknowledged %#x", name, i, got[i], m.data[i])
		}
	}
}

func startChild(t *testing.T, env ...string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{"KAYOFS_CHILD=1"}, env...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, bufio.NewScanner(out)
}

// replay feeds a child's output into the models; it returns whether the
// child printed FORMATTED and DONE.
func replayLog(t *testing.T, lines []string, models map[string]*fileModel) (formatted, done bool) {
	var pending []string
	for _, l := range lines {
		switch {
		case l == "FORMATTED":
			formatted = true
		case l == "DONE":
			done = true
		case strings.HasPrefix(l, "ERROR"):
			t.Fatalf("child: %s", l)
		case strings.HasPrefix(l, "BEGIN "):
			pending = strings.Fields(l)[1:]
		case l == "ACK":
			applyFields(models, pending, false)
			pending = nil
		}
	}
	if pending != nil {
		applyFields(models, pending, true)
	}
	return
}

func applyFields(models map[string]*fileModel, f []string, inFlight bool) {
	name, op := f[0], f[1]
	a, _ := strconv.ParseInt(f[2], 10, 64)
	b, _ := strconv.ParseInt(f[3], 10, 64)
	s, _ := strconv.ParseInt(f[4], 10, 64)
	if op == "X" || name == "-" {
		return
	}
	if op == "C" {
		if inFlight {
			return // may or may not exist; if it does, it is empty
		}
		if models[name] == nil {
			models[name] = newModel()
		}
		return
	}
	if models[name] == nil {
		models[name] = newModel()
	}
	models[name].apply(name, op, a, b, s, inFlight)
}

// Two processes mount one image as two nodes and write concurrently.
func TestTwoProcessesOneImage(t *testing.T) {
	dev := newImage(t, 1<<30)
	mustFormat(t, dev, FormatOptions{Slots: 2})
	v := mustMount(t, dev, "setup")
	if _, err := v.Create("shared.vhd"); err != nil {
		t.Fatal(err)
	}
	v.Unmount()
	models := map[string]*fileModel{"shared.vhd": newModel()}
	var cmds []*exec.Cmd
	var scans []*bufio.Scanner
	for i, node := range []string{"Y-21-2k8x64", "Y-22-2k8x64"} {
		c, s := startChild(t, "KAYOFS_IMG="+dev.Path(), "KAYOFS_NODE="+node, fmt.Sprintf("KAYOFS_SEED=%d", i+1),
			"KAYOFS_OPS=60", fmt.Sprintf("KAYOFS_REGION=%d", i+1))
		cmds, scans = append(cmds, c), append(scans, s)
	}
	outs := make([][]string, 2)
	errc := make(chan error, 2)
	for i := range cmds {
		go func(i int) {
			for scans[i].Scan() {
				outs[i] = append(outs[i], scans[i].Text())
			}
			errc <- cmds[i].Wait()
		}(i)
	}
	for range cmds {
		if err := <-errc; err != nil {
			t.Fatalf("child: %v", err)
		}
	}
	// the two logs touch disjoint files/regions, so replaying them one
	// after the other is their true order per byte
	for i := range outs {
		if _, done := replayLog(t, outs[i], models); !done {
			t.Fatalf("child %d did not finish: %v", i, outs[i])
		}
	}
	mustCheck(t, dev)
	v = mustMount(t, dev, "verifier")
	for name, m := range models {
		if name == "shared.vhd" {
			m.sizeKnown = false // both children extend it
		}
		m.verify(t, v, name)
	}
	v.Unmount()
	mustCheck(t, dev)
}

func TestCrashRecovery(t *testing.T) {
	iters := 16
	if os.Getenv("KAYOFS_LONG") == "1" {
		iters = 300
	}
	crashLoop(t, iters, 40)
}

// The same with files of hundreds of extents: their extent trees are
// split, merged and collapsed by transactions the kill interrupts.
func TestCrashTree(t *testing.T) {
	iters := 6
	if os.Getenv("KAYOFS_LONG") == "1" {
		iters = 200
	}
	crashLoop(t, iters, 120, "KAYOFS_TREE=1")
}

func crashLoop(t *testing.T, iters, ops int, extra ...string) {
	dev := newImage(t, 512<<20)
	seed := time.Now().UnixNano()
	if s, err := strconv.ParseInt(os.Getenv("KAYOFS_CRASH_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	var models map[string]*fileModel
	var uuid [16]byte
	var maxDepth uint8
	defer func() { t.Logf("deepest extent tree: %d", maxDepth) }()
	for it := 0; it < iters; it++ {
		// tree runs keep one volume so fragmentation accumulates
		format := it == 0 || len(extra) == 0 && rng.Intn(6) == 0
		env := []string{"KAYOFS_IMG=" + dev.Path(), "KAYOFS_NODE=crasher", "KAYOFS_CRASHY=1",
			fmt.Sprintf("KAYOFS_SEED=%d", it+1), fmt.Sprintf("KAYOFS_OPS=%d", ops)}
		env = append(env, extra...)
		if format {
			env = append(env, "KAYOFS_FORMAT=1")
		}
		timed := rng.Intn(3) == 0
		if !timed {
			env = append(env, fmt.Sprintf("KAYOFS_KILL_AFTER=%d", 1+rng.Intn(ops*4)))
		}
		cmd, sc := startChild(t, env...)
		if timed {
			d := time.Duration(rng.Intn(40)) * time.Millisecond
			time.AfterFunc(d, func() { cmd.Process.Kill() })
		}
		var lines []string
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		cmd.Wait()
		sb, err := ReadSuperblock(dev)
		if err != nil {
			if !format || contains(lines, "FORMATTED") {
				t.Fatalf("iteration %d: superblock lost: %v", it, err)
			}
			// killed while formatting: start over
			if _, err := Format(dev, FormatOptions{Slots: 2, Force: true}); err != nil {
				t.Fatal(err)
			}
			sb, _ = ReadSuperblock(dev)
			models = map[string]*fileModel{}
			uuid = sb.UUID
			continue
		}
		if sb.UUID != uuid {
			if it > 0 && !format {
				t.Fatalf("iteration %d: volume UUID changed without a format", it)
			}
			models = map[string]*fileModel{}
			uuid = sb.UUID
		}
		replayLog(t, lines, models)
		if _, err := RecoverAll(dev); err != nil {
			t.Fatalf("iteration %d: recover: %v", it, err)
		}
		probs, err := Check(dev)
		if err != nil {
			t.Fatalf("iteration %d: check: %v", it, err)
		}
		for _, p := range probs {
			t.Errorf("iteration %d (log tail %q): %s", it, tail(lines, 3), p)
		}
		if t.Failed() {
			return
		}
		v, err := Mount(dev, "verifier")
		if err != nil {
			t.Fatalf("iteration %d: remount: %v", it, err)
		}
		for name, m := range models {
			m.verify(t, v, name)
			if f, err := v.Open(name); err == nil {
				maxDepth = max(maxDepth, inodeOf(t, v, f).depth)
			}
			m.sizeKnown, m.known = true, trueSlice(len(m.data))
			// the next child starts from what is on disk now
			if f, err := v.Open(name); err == nil {
				sz, _ := f.Size()
				m.data = make([]byte, sz)
				f.ReadAt(m.data, 0)
				m.size = sz
				m.known = trueSlice(int(sz))
			}
		}
		if err := v.Unmount(); err != nil {
			t.Fatal(err)
		}
	}
	mustCheck(t, dev)
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func tail(l []string, n int) []string { return l[max(0, len(l)-n):] }

// trueSlice fills by doubling copies (cheap under the race detector).
func trueSlice(n int) []bool {
	b := make([]bool, n)
	if n > 0 {
		b[0] = true
		for k := 1; k < n; k *= 2 {
			copy(b[k:], b[:k])
		}
	}
	return b
}

var _ = bytes.Equal
