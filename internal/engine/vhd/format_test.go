package vhd

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

const (
	kib = int64(1) << 10
	mib = int64(1) << 20
	gib = int64(1) << 30
)

// Expected values worked out by hand (and by an independent script) from
// the specification's CHS algorithm.
func TestGeometryAndRoundSize(t *testing.T) {
	tests := []struct {
		name      string
		requested int64
		geom      Geometry // CHS(requested/512)
		rounded   int64    // RoundSize(requested)
		roundGeom Geometry // CHS(rounded/512)
	}{
		{"3MiB", 3 * mib, Geometry{90, 4, 17}, 3168256, Geometry{91, 4, 17}},
		{"10MiB", 10 * mib, Geometry{301, 4, 17}, 10514432, Geometry{302, 4, 17}},
		{"100MiB", 100 * mib, Geometry{1003, 12, 17}, 104865792, Geometry{1004, 12, 17}},
		{"1GiB", gib, Geometry{2080, 16, 63}, 1073995776, Geometry{2081, 16, 63}},
		{"31.5GiB boundary", 65535 * 16 * 63 * 512, Geometry{16191, 16, 255}, 33822351360, Geometry{16191, 16, 255}},
		{"40GiB", 40 * gib, Geometry{20560, 16, 255}, 42951106560, Geometry{20561, 16, 255}},
		{"127GiB", 127 * gib, Geometry{65278, 16, 255}, 136365219840, Geometry{65279, 16, 255}},
		{"max CHS", maxCHSSectors * 512, Geometry{65535, 16, 255}, 136899993600, Geometry{65535, 16, 255}},
		{"500GiB", 500 * gib, Geometry{65535, 16, 255}, 500 * gib, Geometry{65535, 16, 255}},
		{"2040GiB max", 2040 * gib, Geometry{65535, 16, 255}, 2040 * gib, Geometry{65535, 16, 255}},
		{"odd bytes", 1000, Geometry{0, 4, 17}, 34816, Geometry{1, 4, 17}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if g := CHS(tc.requested / 512); g != tc.geom {
				t.Errorf("CHS(%d sectors) = %v, want %v", tc.requested/512, g, tc.geom)
			}
			r, err := RoundSize(tc.requested)
			if err != nil {
				t.Fatal(err)
			}
			if r != tc.rounded {
				t.Errorf("RoundSize(%d) = %d, want %d", tc.requested, r, tc.rounded)
			}
			if g := CHS(r / 512); g != tc.roundGeom {
				t.Errorf("CHS(rounded) = %v, want %v", g, tc.roundGeom)
			}
		})
	}
}

// RoundSize must be the smallest CHS fixed point ≥ the request; compare
// with brute force over small sizes, across the 17/31/63 regimes.
func TestRoundSizeIsSmallestFixedPoint(t *testing.T) {
	check := func(sectors int64) {
		want := sectors
		for CHS(want).Sectors() != want {
			want++
		}
		got, err := RoundSize(sectors * 512)
		if err != nil || got != want*512 {
			t.Fatalf("RoundSize(%d sectors) = %d, %v; brute force %d", sectors, got, err, want*512)
		}
	}
	for s := int64(1); s < 20000; s += 7 {
		check(s)
	}
	for _, base := range []int64{4 * 1024 * 17, 16 * 1024 * 17, 16 * 1024 * 31, 16 * 1024 * 63, 65535 * 16 * 63} {
		for s := base - 3000; s < base+3000; s += 13 {
			check(s)
		}
	}
}

func TestRoundSizeLimits(t *testing.T) {
	for _, n := range []int64{0, -1, MaxSize + 1, 3000 * gib} {
		if _, err := RoundSize(n); err == nil {
			t.Errorf("RoundSize(%d) succeeded", n)
		}
	}
	if r, err := RoundSize(MaxSize - 100); err != nil || r != MaxSize {
		t.Errorf("RoundSize(max-100) = %d, %v", r, err)
	}
}

func testFooter() Footer {
	f := Footer{
		Features: 2, Version: formatVersion, DataOffset: 512,
		Timestamp:      Timestamp(time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)),
		CreatorVersion: 0x00010000, OriginalSize: 40 * uint64(gib), CurrentSize: 42951106560,
		Geometry: Geometry{20561, 16, 255}, DiskType: Dynamic,
		UUID: UUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
	}
	copy(f.CreatorApp[:], "kayo")
	copy(f.CreatorHostOS[:], "Wi2k")
	return f
}

func TestFooterLayout(t *testing.T) {
	f := testFooter()
	b := f.Marshal()
	want := map[int][]byte{
		0:  []byte("conectix"),
		8:  {0, 0, 0, 2},
		12: {0, 1, 0, 0},
		16: {0, 0, 0, 0, 0, 0, 2, 0},
		28: []byte("kayoWi2k")[:4],
		36: []byte("Wi2k"),
		56: {0x50, 0x51, 16, 255},
		60: {0, 0, 0, 3},
		68: {1, 2, 3},
		84: {0},
	}
	for off, w := range want {
		if !bytes.Equal(b[off:off+len(w)], w) {
			t.Errorf("footer bytes at %d = % x, want % x", off, b[off:off+len(w)], w)
		}
	}
	var sum uint32
	for i, c := range b {
		if i < 64 || i >= 68 {
			sum += uint32(c)
		}
	}
	if got := uint32(b[64])<<24 | uint32(b[65])<<16 | uint32(b[66])<<8 | uint32(b[67]); got != ^sum {
		t.Errorf("checksum %#x, want %#x", got, ^sum)
	}
	g, err := ParseFooter(b)
	if err != nil {
		t.Fatal(err)
	}
	if *g != f {
		t.Errorf("round trip: got %+v\nwant %+v", *g, f)
	}
	if got := g.Time(); !got.Equal(time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)) {
		t.Errorf("Time() = %v", got)
	}
}

func TestTimestamp(t *testing.T) {
	if Timestamp(time.Time{}) != 0 || Timestamp(time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC)) != 0 {
		t.Error("times before 2000 must encode as 0")
	}
	if got := Timestamp(time.Date(2000, 1, 1, 0, 1, 0, 0, time.FixedZone("x", 3600))); got != 0 {
		t.Errorf("timezone handling: %d", got)
	}
	if got := Timestamp(time.Date(2000, 1, 2, 0, 0, 0, 0, time.UTC)); got != 86400 {
		t.Errorf("one day = %d", got)
	}
}

func TestFooterCorruption(t *testing.T) {
	f := testFooter()
	good := f.Marshal()
	for _, off := range []int{0, 9, 48, 64, 70, 300, 511} {
		b := bytes.Clone(good)
		b[off] ^= 0x40
		if _, err := ParseFooter(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("flipping byte %d: err = %v, want ErrCorrupt", off, err)
		}
	}
	if _, err := ParseFooter(good[:100]); !errors.Is(err, ErrCorrupt) {
		t.Errorf("short footer: %v", err)
	}
}

func TestHeaderRoundTripAndCorruption(t *testing.T) {
	h := Header{DataOffset: fixedDataOff, TableOffset: 1536, Version: formatVersion, MaxTableEntries: 20481, BlockSize: DefaultBlockSize}
	b := h.Marshal()
	if string(b[:8]) != "cxsparse" || len(b) != HeaderSize {
		t.Fatalf("bad header bytes % x", b[:16])
	}
	g, err := ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if *g != h {
		t.Errorf("round trip: %+v != %+v", *g, h)
	}
	for _, off := range []int{0, 17, 29, 36, 600, 1023} {
		c := bytes.Clone(b)
		c[off] ^= 1
		if _, err := ParseHeader(c); !errors.Is(err, ErrCorrupt) {
			t.Errorf("flipping header byte %d: %v", off, err)
		}
	}
	bad := h
	bad.BlockSize = 3 << 20
	if _, err := ParseHeader(bad.Marshal()); !errors.Is(err, ErrCorrupt) {
		t.Errorf("non-power-of-two block size accepted: %v", err)
	}
}

func FuzzFooter(f *testing.F) {
	ft := testFooter()
	f.Add(ft.Marshal())
	ft.DiskType = Fixed
	ft.DataOffset = fixedDataOff
	f.Add(ft.Marshal())
	f.Add(make([]byte, 512))
	f.Add([]byte("conectix"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ft, err := ParseFooter(b)
		if err != nil {
			return
		}
		_ = ft.validate()
		_ = ft.Time()
		again, err := ParseFooter(ft.Marshal())
		if err != nil || *again != *ft {
			t.Fatalf("re-encoding a valid footer: %v %+v %+v", err, again, ft)
		}
	})
}

func FuzzHeader(f *testing.F) {
	h := Header{DataOffset: fixedDataOff, TableOffset: 1536, Version: formatVersion, MaxTableEntries: 7, BlockSize: DefaultBlockSize}
	f.Add(h.Marshal())
	// A differencing header: parent UUID, timestamp, name and locators.
	h.ParentUUID, h.ParentTimestamp = UUID{1, 2, 3}, 7
	if err := h.setParentName(`..\templates\base.vhd`); err != nil {
		f.Fatal(err)
	}
	h.setLocator(0, Locator{Code: [4]byte{'W', '2', 'r', 'u'}, Space: 512, Length: 44, Offset: 2048})
	h.setLocator(1, Locator{Code: [4]byte{'W', '2', 'k', 'u'}, Space: 1, Length: 80, Offset: 2560})
	f.Add(h.Marshal())
	f.Add(make([]byte, 1024))
	f.Add([]byte("cxsparse"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			return
		}
		_ = bitmapSize(h.BlockSize)
		_ = batBytes(h.MaxTableEntries)
		_ = h.ParentName()
		_ = h.Locators()
		again, err := ParseHeader(h.Marshal())
		if err != nil || *again != *h {
			t.Fatalf("re-encoding a valid header: %v", err)
		}
	})
}

// FuzzOpen feeds arbitrary images to Open and Check: errors are fine,
// panics and runaway allocations are not.
func FuzzOpen(f *testing.F) {
	m := &memFile{}
	if _, err := Create(m, Options{Type: Dynamic, Size: 3 * mib, BlockSize: 512 * kib}); err != nil {
		f.Fatal(err)
	}
	f.Add(bytes.Clone(m.data))
	// A differencing child of that disk: Check parses its locators, and
	// OpenChain resolves the parent (the dynamic image below) by any name.
	fs := memFS{"base.vhd": m}
	c := &memFile{}
	if _, err := CreateChild(c, fs.opener("."), ChildOptions{ParentPath: "base.vhd", ParentAbsPath: `C:\t\base.vhd`, BlockSize: 4 * kib}); err != nil {
		f.Fatal(err)
	}
	f.Add(bytes.Clone(c.data))
	f.Fuzz(func(t *testing.T, b []byte) {
		m := &memFile{data: bytes.Clone(b)}
		_ = Check(m, int64(len(b)))
		parent := &memFile{}
		if _, err := Create(parent, Options{Type: Dynamic, Size: 3 * mib, BlockSize: 512 * kib}); err != nil {
			t.Fatal(err)
		}
		open := func(string) (File, int64, error) { return parent, parent.size(), nil }
		_ = CheckChain(m, int64(len(b)), open)
		d, err := OpenChain(m, int64(len(b)), open)
		if err != nil {
			return
		}
		buf := make([]byte, 4096)
		_, _ = d.ReadAt(buf, 0)
		_, _ = d.ReadAt(buf, d.Size()-100)
	})
}
