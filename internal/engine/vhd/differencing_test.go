package vhd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"math/rand"
	"strings"
	"testing"
)

// memFS is a tree of in-memory files keyed by cleaned Windows paths.
type memFS map[string]*memFile

// opener resolves parent paths relative to dir, as a ParentOpener must.
func (m memFS) opener(dir string) ParentOpener {
	return func(path string) (File, int64, error) {
		f, ok := m[cleanWin(dir+`\`+path)]
		if !ok {
			return nil, 0, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
		}
		return f, f.size(), nil
	}
}

func sum(m *memFile) [32]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return sha256.Sum256(m.data)
}

func readAll(t testing.TB, d *Disk) []byte {
	t.Helper()
	b := make([]byte, d.Size())
	if _, err := d.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

// template makes a parent with data in scattered extents at path.
func template(t testing.TB, m memFS, path string, typ DiskType, seed int64) []byte {
	t.Helper()
	f := &memFile{}
	d := mustCreate(t, f, Options{Type: typ, Size: 6 * mib, BlockSize: 256 * kib})
	rng := rand.New(rand.NewSource(seed))
	for i := 0; i < 10; i++ {
		p := make([]byte, rng.Int63n(200*kib)+1)
		rng.Read(p)
		if _, err := d.WriteAt(p, rng.Int63n(d.Size()-int64(len(p)))); err != nil {
			t.Fatal(err)
		}
	}
	m[path] = f
	return readAll(t, d)
}

// scribble writes random extents, many not sector aligned, through d
// and into ref.
func scribble(t testing.TB, d *Disk, ref []byte, seed int64, n int) {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	for i := 0; i < n; i++ {
		p := make([]byte, rng.Int63n(70*kib)+1)
		rng.Read(p)
		off := rng.Int63n(d.Size() - int64(len(p)))
		if _, err := d.WriteAt(p, off); err != nil {
			t.Fatal(err)
		}
		copy(ref[off:], p)
	}
}

func TestChildRoundTrip(t *testing.T) {
	for _, typ := range []DiskType{Dynamic, Fixed} {
		t.Run(typ.String(), func(t *testing.T) {
			m := memFS{}
			base := template(t, m, `templates\base.vhd`, typ, 1)
			before := sum(m[`templates\base.vhd`])
			cf := &memFile{}
			c, err := CreateChild(cf, m.opener(`vms\a`), ChildOptions{ParentPath: `..\..\templates\base.vhd`, Time: clock})
			if err != nil {
				t.Fatal(err)
			}
			if c.Type() != Differencing || c.Size() != int64(len(base)) || c.ParentPath() != `..\..\templates\base.vhd` {
				t.Fatalf("child type %v size %d parent %q", c.Type(), c.Size(), c.ParentPath())
			}
			if !bytes.Equal(readAll(t, c), base) {
				t.Fatal("a new child does not read as its parent")
			}
			ref := bytes.Clone(base)
			scribble(t, c, ref, 2, 30)
			if !bytes.Equal(readAll(t, c), ref) {
				t.Fatal("child reads differ from parent+writes")
			}
			if sum(m[`templates\base.vhd`]) != before {
				t.Fatal("writes to the child changed the parent's file")
			}
			c2, err := OpenChain(cf, cf.size(), m.opener(`vms\a`))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(readAll(t, c2), ref) {
				t.Fatal("reopened child reads differently")
			}
			// The child holds only sectors its writes touched.
			own, err := c2.OwnSectors()
			if err != nil {
				t.Fatal(err)
			}
			touched := int64(0)
			for s := int64(0); s < int64(len(ref)); s += SectorSize {
				if !bytes.Equal(ref[s:s+SectorSize], base[s:s+SectorSize]) {
					touched++
				}
			}
			if own < touched || own > touched+60 { // 30 writes: at most 2 edge sectors each rewritten unchanged
				t.Errorf("child holds %d sectors, writes changed %d", own, touched)
			}
			if p := CheckChain(cf, cf.size(), m.opener(`vms\a`)); len(p) != 0 {
				t.Fatalf("CheckChain: %s", strings.Join(p, "; "))
			}
		})
	}
}

func TestChildChainOfTwo(t *testing.T) {
	m := memFS{}
	base := template(t, m, `templates\base.vhd`, Dynamic, 3)
	baseSum := sum(m[`templates\base.vhd`])
	af := &memFile{}
	a, err := CreateChild(af, m.opener(`vms\a`), ChildOptions{ParentPath: `../../templates/base.vhd`})
	if err != nil {
		t.Fatal(err)
	}
	refA := bytes.Clone(base)
	scribble(t, a, refA, 4, 15)
	m[`vms\a\a.vhd`] = af
	aSum := sum(af)
	gf := &memFile{}
	g, err := CreateChild(gf, m.opener(`vms\b`), ChildOptions{ParentPath: `..\a\a.vhd`, BlockSize: 64 * kib})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readAll(t, g), refA) {
		t.Fatal("grandchild does not read as its parent chain")
	}
	refG := bytes.Clone(refA)
	scribble(t, g, refG, 5, 15)
	g2, err := OpenChain(gf, gf.size(), m.opener(`vms\b`))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readAll(t, g2), refG) {
		t.Fatal("reopened grandchild differs")
	}
	if g2.Parent().ParentPath() != `..\..\templates\base.vhd` {
		t.Errorf("grandparent resolved as %q", g2.Parent().ParentPath())
	}
	if sum(af) != aSum || sum(m[`templates\base.vhd`]) != baseSum {
		t.Fatal("writes to the grandchild changed an ancestor")
	}
	if p := CheckChain(gf, gf.size(), m.opener(`vms\b`)); len(p) != 0 {
		t.Fatalf("CheckChain: %s", strings.Join(p, "; "))
	}
	// A flattened copy is a standalone dynamic disk with the same bytes.
	cf := &memFile{}
	cp, err := Copy(context.Background(), cf, g2, Options{Type: Dynamic, Time: clock})
	if err != nil {
		t.Fatal(err)
	}
	if cp.Type() != Dynamic || !bytes.Equal(readAll(t, cp), refG) || cp.Footer().UUID == g2.Footer().UUID {
		t.Fatal("copy of the chain differs")
	}
	assertClean(t, cf, cf.size())
}

func TestChildLayout(t *testing.T) {
	m := memFS{}
	template(t, m, `base.vhd`, Dynamic, 6)
	pft, _ := ParseFooter(m[`base.vhd`].data[m[`base.vhd`].size()-FooterSize:])
	cf := &memFile{}
	abs := `C:\ClusterStorage\Volume1\base.vhd`
	if _, err := CreateChild(cf, m.opener("."), ChildOptions{ParentPath: "base.vhd", ParentAbsPath: abs}); err != nil {
		t.Fatal(err)
	}
	ft, err := ParseFooter(cf.data[cf.size()-FooterSize:])
	if err != nil {
		t.Fatal(err)
	}
	if ft.DiskType != Differencing || ft.DataOffset != 512 || ft.CurrentSize != pft.CurrentSize || ft.Geometry != pft.Geometry {
		t.Errorf("child footer %+v", ft)
	}
	h, err := ParseHeader(cf.data[512:1536])
	if err != nil {
		t.Fatal(err)
	}
	if h.ParentUUID != pft.UUID || h.ParentTimestamp != pft.Timestamp || h.ParentName() != `.\base.vhd` {
		t.Errorf("header parent fields %v %d %q", h.ParentUUID, h.ParentTimestamp, h.ParentName())
	}
	// The name is UTF-16BE at 64; the locators' paths UTF-16LE.
	if !bytes.Equal(cf.data[512+64:512+70], []byte{0, '.', 0, '\\', 0, 'b'}) {
		t.Errorf("parent name bytes % x", cf.data[512+64:512+70])
	}
	ls := h.Locators()
	if len(ls) != 2 || string(ls[0].Code[:]) != "W2ru" || string(ls[1].Code[:]) != "W2ku" {
		t.Fatalf("locators %+v", ls)
	}
	for i, want := range []string{`.\base.vhd`, abs} {
		l := ls[i]
		if l.Offset%SectorSize != 0 || l.Length != uint32(2*len(want)) || l.Space%SectorSize != 0 || l.Space < l.Length {
			t.Errorf("locator %d %+v", i, l)
		}
		if got := fromUTF16LE(cf.data[l.Offset : l.Offset+uint64(l.Length)]); got != want {
			t.Errorf("locator %d path %q, want %q", i, got, want)
		}
		if cf.data[l.Offset] != want[0] || cf.data[l.Offset+1] != 0 {
			t.Errorf("locator %d is not little endian: % x", i, cf.data[l.Offset:l.Offset+4])
		}
	}
}

func TestChildParentErrors(t *testing.T) {
	m := memFS{}
	template(t, m, `t\base.vhd`, Dynamic, 7)
	cf := &memFile{}
	if _, err := CreateChild(cf, m.opener("vm"), ChildOptions{ParentPath: `..\t\base.vhd`}); err != nil {
		t.Fatal(err)
	}
	var pe *ParentError
	// Open alone cannot read a child.
	if _, err := Open(cf, cf.size()); !errors.As(err, &pe) || !errors.Is(err, ErrParentRequired) {
		t.Fatalf("Open of a child: %v", err)
	}
	// Missing parent: typed, names the path, nothing else needed.
	if _, err := OpenChain(cf, cf.size(), memFS{}.opener("vm")); !errors.As(err, &pe) || !errors.Is(err, fs.ErrNotExist) || pe.Path != `..\t\base.vhd` || !strings.Contains(err.Error(), `..\\t\\base.vhd`) {
		t.Fatalf("missing parent: %v", err)
	}
	// A different disk at the parent's path.
	other := memFS{}
	template(t, other, `t\base.vhd`, Dynamic, 7)
	_, err := OpenChain(cf, cf.size(), other.opener("vm"))
	if !errors.As(err, &pe) || !errors.Is(err, ErrParentMismatch) || pe.Got == pe.Want || !strings.Contains(err.Error(), `base.vhd`) {
		t.Fatalf("mismatching parent: %v", err)
	}
	for name, o := range map[string]ParentOpener{"missing": memFS{}.opener("vm"), "mismatch": other.opener("vm"), "no opener": nil} {
		p := CheckChain(cf, cf.size(), o)
		if len(p) != 1 || !strings.Contains(p[0], `base.vhd`) {
			t.Errorf("CheckChain with %s parent: %q", name, p)
		}
	}
	// Bad parent paths, and a parent that is not a VHD.
	for _, p := range []string{"", `C:\base.vhd`, `\base.vhd`, `..`, `a\..`} {
		if _, err := CreateChild(&memFile{}, m.opener("vm"), ChildOptions{ParentPath: p}); err == nil {
			t.Errorf("parent path %q accepted", p)
		}
	}
	m[`junk.vhd`] = &memFile{data: make([]byte, 4096)}
	if _, err := CreateChild(&memFile{}, m.opener("."), ChildOptions{ParentPath: "junk.vhd"}); !errors.As(err, &pe) || !errors.Is(err, ErrCorrupt) {
		t.Errorf("junk parent: %v", err)
	}
}

func TestCheckChildStructures(t *testing.T) {
	m := memFS{}
	template(t, m, `base.vhd`, Dynamic, 8)
	cf := &memFile{}
	c, err := CreateChild(cf, m.opener("."), ChildOptions{ParentPath: "base.vhd", BlockSize: 64 * kib})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteAt([]byte("x"), 100); err != nil {
		t.Fatal(err)
	}
	h, _ := ParseHeader(cf.data[512:1536])
	l := h.Locators()[0]
	// A locator pointing into the BAT, and one past the file.
	for _, off := range []uint64{1536, uint64(cf.size()) + 4096} {
		bad := &memFile{data: bytes.Clone(cf.data)}
		hh := *h
		l2 := l
		l2.Offset = off
		hh.setLocator(0, l2)
		copy(bad.data[512:], hh.Marshal())
		if p := CheckChain(bad, bad.size(), m.opener(".")); len(p) == 0 {
			t.Errorf("locator at %d: no problem found", off)
		}
	}
	// No parent UUID.
	bad := &memFile{data: bytes.Clone(cf.data)}
	hh := *h
	hh.ParentUUID = UUID{}
	copy(bad.data[512:], hh.Marshal())
	if p := Check(bad, bad.size()); len(p) == 0 || !strings.Contains(strings.Join(p, ";"), "no parent UUID") {
		t.Errorf("zero parent UUID: %q", p)
	}
}

// A grown child reads zeros past its parent's end; its locators survive
// a BAT that has to grow.
func TestChildGrow(t *testing.T) {
	m := memFS{}
	base := template(t, m, `base.vhd`, Dynamic, 9)
	cf := &memFile{}
	c, err := CreateChild(cf, m.opener("."), ChildOptions{ParentPath: "base.vhd", BlockSize: 4 * kib})
	if err != nil {
		t.Fatal(err)
	}
	ref := bytes.Clone(base)
	scribble(t, c, ref, 10, 5)
	if err := c.Grow(12 * mib); err != nil {
		t.Fatal(err)
	}
	ref = append(ref, make([]byte, c.Size()-int64(len(ref)))...)
	copy(ref[c.Size()-4:], "tail")
	if _, err := c.WriteAt([]byte("tail"), c.Size()-4); err != nil {
		t.Fatal(err)
	}
	c2, err := OpenChain(cf, cf.size(), m.opener("."))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readAll(t, c2), ref) {
		t.Fatal("grown child reads differently")
	}
	if p := CheckChain(cf, cf.size(), m.opener(".")); len(p) != 0 {
		t.Fatalf("CheckChain: %s", strings.Join(p, "; "))
	}
}

func TestCleanWin(t *testing.T) {
	for in, want := range map[string]string{
		`.\base.vhd`:                  `base.vhd`,
		`vms\a\..\..\templates\b.vhd`: `templates\b.vhd`,
		`..\..\x.vhd`:                 `..\..\x.vhd`,
		`vms\b\..\a\a.vhd`:            `vms\a\a.vhd`,
		`a\\b\.\c`:                    `a\b\c`,
		`vm\..\..\templates\base.vhd`: `..\templates\base.vhd`,
	} {
		if got := cleanWin(in); got != want {
			t.Errorf("cleanWin(%q) = %q, want %q", in, got, want)
		}
	}
	if got := joinWin(`..\a\a.vhd`, `..\..\t\b.vhd`); got != `..\..\t\b.vhd` {
		t.Errorf("joinWin = %q", got)
	}
}

// countFile counts what a File's user reads and writes.
type countFile struct {
	File
	read, written int64
}

func (c *countFile) ReadAt(p []byte, off int64) (int, error) {
	c.read += int64(len(p))
	return c.File.ReadAt(p, off)
}

func (c *countFile) WriteAt(p []byte, off int64) (int, error) {
	c.written += int64(len(p))
	return c.File.WriteAt(p, off)
}

// Creating a child reads only the parent's footer, header and BAT,
// whatever the parent holds, and writes nothing to it.
func TestCreateChildReadsOnlyParentMetadata(t *testing.T) {
	for _, size := range []int64{64 * mib, 2 << 30} {
		pf := &memFile{}
		p := mustCreate(t, pf, Options{Type: Dynamic, Size: size})
		for off := int64(0); off < p.Size(); off += 64 * mib {
			if _, err := p.WriteAt(bytes.Repeat([]byte{7}, 4096), off); err != nil {
				t.Fatal(err)
			}
		}
		cp := &countFile{File: pf}
		open := func(string) (File, int64, error) { return cp, pf.size(), nil }
		cf := &memFile{}
		if _, err := CreateChild(cf, open, ChildOptions{ParentPath: "p.vhd"}); err != nil {
			t.Fatal(err)
		}
		entries := (p.Size() + DefaultBlockSize - 1) / DefaultBlockSize
		if max := FooterSize + HeaderSize + entries*4; cp.read > max || cp.written != 0 {
			t.Errorf("%d-byte parent: read %d bytes (metadata is %d), wrote %d", size, cp.read, max, cp.written)
		}
		if want := FooterSize + HeaderSize + batBytes(uint32(entries)) + SectorSize + FooterSize; cf.size() != want {
			t.Errorf("%d-byte parent: child file %d bytes, want %d", size, cf.size(), want)
		}
	}
}

func TestReadParent(t *testing.T) {
	m := memFS{}
	template(t, m, `templates\base.vhd`, Dynamic, 13)
	pf := m[`templates\base.vhd`]
	pft, _ := ParseFooter(pf.data[pf.size()-FooterSize:])
	cf := &memFile{}
	if _, err := CreateChild(cf, m.opener("WEB01"), ChildOptions{ParentPath: `..\templates\base.vhd`}); err != nil {
		t.Fatal(err)
	}
	pi, err := ReadParent(cf, cf.size())
	if err != nil {
		t.Fatal(err)
	}
	if pi != (ParentInfo{Path: `..\templates\base.vhd`, Relative: true, UUID: pft.UUID, Timestamp: pft.Timestamp}) {
		t.Errorf("ReadParent = %+v", pi)
	}
	if got := ResolveParentPath(`WEB01\WEB01.vhd`, pi.Path); got != `templates\base.vhd` {
		t.Errorf("ResolveParentPath = %q", got)
	}
	if _, err := ReadParent(pf, pf.size()); !errors.Is(err, ErrNotDifferencing) {
		t.Errorf("ReadParent of a dynamic disk: %v", err)
	}
}
