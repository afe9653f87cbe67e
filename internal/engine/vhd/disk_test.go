package vhd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// memFile is an in-memory File; wrapped in allocFile it is also an
// Allocator that records the calls.
type memFile struct {
	mu     sync.Mutex
	data   []byte
	allocs [][2]int64
	writes int
}

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if off >= int64(len(m.data)) {
		return 0, io.EOF
	}
	n := copy(p, m.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes++
	if end := off + int64(len(p)); end > int64(len(m.data)) {
		m.data = append(m.data, make([]byte, end-int64(len(m.data)))...)
	}
	return copy(m.data[off:], p), nil
}

func (m *memFile) Truncate(n int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n < int64(len(m.data)) {
		m.data = m.data[:n]
	} else {
		m.data = append(m.data, make([]byte, n-int64(len(m.data)))...)
	}
	return nil
}

func (m *memFile) size() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(len(m.data))
}

type allocFile struct{ *memFile }

func (a allocFile) Allocate(off, n int64) error {
	a.allocs = append(a.allocs, [2]int64{off, n})
	if end := off + n; end > a.size() {
		return a.Truncate(end)
	}
	return nil
}

var clock = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

func mustCreate(t testing.TB, f File, o Options) *Disk {
	t.Helper()
	if o.Time.IsZero() {
		o.Time = clock
	}
	d, err := Create(f, o)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func assertClean(t testing.TB, f File, size int64) {
	t.Helper()
	if p := Check(f, size); len(p) != 0 {
		t.Fatalf("Check: %s", strings.Join(p, "; "))
	}
}

func TestCreateFixed(t *testing.T) {
	m := &memFile{data: []byte("stale contents that must go")}
	a := allocFile{m}
	u := UUID{9, 9, 9}
	d := mustCreate(t, a, Options{Type: Fixed, Size: 10 * mib, UUID: u})
	if d.Size() != 10514432 || d.Type() != Fixed || d.FileSize() != 10514432+512 || m.size() != d.FileSize() {
		t.Fatalf("size %d type %v file %d/%d", d.Size(), d.Type(), d.FileSize(), m.size())
	}
	if len(m.allocs) != 1 || m.allocs[0] != [2]int64{0, 10514432} {
		t.Errorf("Allocate calls %v, want one for the data", m.allocs)
	}
	if m.writes != 1 {
		t.Errorf("fixed Create did %d writes, want 1 (the footer; never zero-fill)", m.writes)
	}
	ft := d.Footer()
	if ft.UUID != u || ft.DataOffset != fixedDataOff || ft.Geometry != (Geometry{302, 4, 17}) ||
		string(ft.CreatorApp[:]) != "kayo" || !ft.Time().Equal(clock) || ft.OriginalSize != ft.CurrentSize {
		t.Errorf("footer %+v", ft)
	}
	if !bytes.Equal(m.data[:27], make([]byte, 27)) {
		t.Error("Create kept stale bytes")
	}
	assertClean(t, m, m.size())
}

func TestCreateDynamicLayout(t *testing.T) {
	m := &memFile{}
	d := mustCreate(t, m, Options{Type: Dynamic, Size: 40 * gib})
	if d.Size() != 42951106560 || d.BlockSize() != DefaultBlockSize {
		t.Fatalf("size %d block %d", d.Size(), d.BlockSize())
	}
	entries := int64(42951106560+DefaultBlockSize-1) / DefaultBlockSize // 20481
	bat := (entries*4 + 511) / 512 * 512
	if want := 512 + 1024 + bat + 512; m.size() != want {
		t.Fatalf("file %d bytes, want %d", m.size(), want)
	}
	if !bytes.Equal(m.data[:512], m.data[m.size()-512:]) {
		t.Error("footer copy differs from footer")
	}
	h, err := ParseHeader(m.data[512:1536])
	if err != nil {
		t.Fatal(err)
	}
	if h.TableOffset != 1536 || h.MaxTableEntries != uint32(entries) || h.BlockSize != DefaultBlockSize || h.DataOffset != fixedDataOff {
		t.Errorf("header %+v", h)
	}
	for i := int64(1536); i < 1536+bat; i++ {
		if m.data[i] != 0xFF {
			t.Fatalf("BAT byte %d = %#x", i, m.data[i])
		}
	}
	assertClean(t, m, m.size())
}

func TestCreateErrors(t *testing.T) {
	for _, o := range []Options{
		{Type: 0, Size: mib},
		{Type: Differencing, Size: mib},
		{Type: Fixed, Size: 0},
		{Type: Dynamic, Size: MaxSize + 1},
		{Type: Dynamic, Size: mib, BlockSize: 3000},
		{Type: Dynamic, Size: mib, BlockSize: 512 << 20},
	} {
		if _, err := Create(&memFile{}, o); err == nil {
			t.Errorf("Create(%+v) succeeded", o)
		}
	}
}

// roundTrip writes random extents through the disk and a reference
// buffer, reopening midway, and compares everything.
func roundTrip(t *testing.T, typ DiskType, bs int64) {
	m := &memFile{}
	d := mustCreate(t, m, Options{Type: typ, Size: 5*mib + 3, BlockSize: bs})
	ref := make([]byte, d.Size())
	rng := rand.New(rand.NewSource(int64(typ)*7 + bs))
	for i := 0; i < 40; i++ {
		if i == 20 {
			var err error
			if d, err = Open(m, m.size()); err != nil {
				t.Fatal(err)
			}
		}
		n := rng.Int63n(128*kib) + 1
		off := rng.Int63n(d.Size() - n)
		p := make([]byte, n)
		rng.Read(p)
		if w, err := d.WriteAt(p, off); err != nil || w != len(p) {
			t.Fatalf("WriteAt(%d, %d) = %d, %v", n, off, w, err)
		}
		copy(ref[off:], p)
		q := make([]byte, rng.Int63n(192*kib)+1)
		roff := rng.Int63n(d.Size())
		rn, err := d.ReadAt(q, roff)
		wantN := min(int64(len(q)), d.Size()-roff)
		if int64(rn) != wantN || (err != nil && (err != io.EOF || wantN == int64(len(q)))) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v", len(q), roff, rn, err)
		}
		if !bytes.Equal(q[:rn], ref[roff:roff+int64(rn)]) {
			t.Fatalf("read at %d differs", roff)
		}
	}
	got := make([]byte, d.Size())
	if _, err := d.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, ref) {
		t.Fatal("full read differs")
	}
	if d.FileSize() != m.size() {
		t.Errorf("FileSize %d, file %d", d.FileSize(), m.size())
	}
	assertClean(t, m, m.size())
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		typ DiskType
		bs  int64
	}{{Fixed, 0}, {Dynamic, 0}, {Dynamic, 64 * kib}, {Dynamic, 512}} {
		t.Run(fmt.Sprintf("%v-%d", tc.typ, tc.bs), func(t *testing.T) { roundTrip(t, tc.typ, tc.bs) })
	}
}

func TestDynamicSparse(t *testing.T) {
	m := &memFile{}
	d := mustCreate(t, m, Options{Type: Dynamic, Size: 64 * mib, BlockSize: mib})
	before := m.size()
	if _, err := d.WriteAt([]byte("hello"), 10*mib+1000); err != nil {
		t.Fatal(err)
	}
	if want := before + 512 + mib; m.size() != want {
		t.Fatalf("one block write grew file to %d, want %d", m.size(), want)
	}
	// Bitmap: only sector 1000/512 = 1 of block 10 is marked.
	bm := m.data[before-512 : before]
	if bm[0] != 0x40 || !bytes.Equal(bm[1:], make([]byte, 511)) {
		t.Errorf("bitmap starts % x", bm[:4])
	}
	ft, err := ParseFooter(m.data[m.size()-512:])
	if err != nil || ft.CurrentSize != uint64(d.Size()) {
		t.Fatalf("footer not moved to the new end: %v", err)
	}
	p := make([]byte, 2*mib)
	if _, err := d.ReadAt(p, 9*mib); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 2*mib)
	copy(want[mib+1000:], "hello")
	if !bytes.Equal(p, want) {
		t.Error("sparse read wrong")
	}
	if _, err := d.WriteAt([]byte("x"), d.Size()); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("write past end: %v", err)
	}
	if _, err := d.WriteAt([]byte("xy"), d.Size()-1); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("write straddling end: %v", err)
	}
	if n, err := d.ReadAt(p, d.Size()); n != 0 || err != io.EOF {
		t.Errorf("read at end: %d %v", n, err)
	}
	assertClean(t, m, m.size())
}

// Foreign bitmaps: sectors whose bit is clear read as zeros even if the
// block holds bytes there.
func TestBitmapHonoured(t *testing.T) {
	m := &memFile{}
	d := mustCreate(t, m, Options{Type: Dynamic, Size: 8 * mib, BlockSize: mib})
	if _, err := d.WriteAt(bytes.Repeat([]byte{7}, 2048), 0); err != nil {
		t.Fatal(err)
	}
	blk := int64(binary.BigEndian.Uint32(m.data[1536:])) * 512
	m.data[blk] = 0xA0 // sectors 0 and 2 valid, 1 and 3 not
	d2, err := Open(m, m.size())
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 2048)
	d2.ReadAt(p, 0)
	for s := 0; s < 4; s++ {
		want := byte(7)
		if s%2 == 1 {
			want = 0
		}
		if p[s*512] != want || p[s*512+511] != want {
			t.Errorf("sector %d reads %d, want %d", s, p[s*512], want)
		}
	}
	if _, err := d2.WriteAt([]byte{1}, 512); err != nil { // sets bit 1 again
		t.Fatal(err)
	}
	if m.data[blk] != 0xE0 {
		t.Errorf("bitmap byte %#x, want 0xe0", m.data[blk])
	}
}

func TestOpenCorruption(t *testing.T) {
	mk := func(typ DiskType) *memFile {
		m := &memFile{}
		d := mustCreate(t, m, Options{Type: typ, Size: 4 * mib, BlockSize: mib})
		if _, err := d.WriteAt([]byte("data"), 2*mib); err != nil {
			t.Fatal(err)
		}
		return m
	}
	tests := []struct {
		name   string
		typ    DiskType
		damage func(m *memFile)
		want   string
	}{
		{"footer checksum", Fixed, func(m *memFile) { m.data[len(m.data)-512+50]++ }, "footer checksum"},
		{"footer cookie", Dynamic, func(m *memFile) { m.data[len(m.data)-512] = 'X' }, "copy at offset 0 is intact"},
		{"truncated dynamic", Dynamic, func(m *memFile) { m.data = m.data[:len(m.data)-4096] }, "copy at offset 0 is intact"},
		{"header checksum", Dynamic, func(m *memFile) { m.data[512+100]++ }, "dynamic header checksum"},
		{"header cookie", Dynamic, func(m *memFile) { m.data[512] = 'X' }, "dynamic header cookie"},
		{"BAT entry outside", Dynamic, func(m *memFile) { binary.BigEndian.PutUint32(m.data[1536+8:], 0x7FFFFFFF) }, "BAT entry 2"},
		{"tiny", Fixed, func(m *memFile) { m.data = m.data[:100] }, "too small"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := mk(tc.typ)
			tc.damage(m)
			_, err := Open(m, m.size())
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open: %v, want ErrCorrupt mentioning %q", err, tc.want)
			}
			if p := Check(m, m.size()); len(p) == 0 {
				t.Error("Check found nothing")
			}
		})
	}
}

func TestCheckFindsOverlapsAndCopyMismatch(t *testing.T) {
	m := &memFile{}
	d := mustCreate(t, m, Options{Type: Dynamic, Size: 4 * mib, BlockSize: mib})
	for i := int64(0); i < 3; i++ {
		d.WriteAt([]byte{1}, i*mib)
	}
	assertClean(t, m, m.size())
	e0 := binary.BigEndian.Uint32(m.data[1536:])
	binary.BigEndian.PutUint32(m.data[1536+8:], e0+1) // block 2 overlaps block 0
	m.data[200] = 1                                   // footer copy damaged
	p := strings.Join(Check(m, m.size()), "\n")
	if !strings.Contains(p, "block 2") || !strings.Contains(p, "overlaps block 0") || !strings.Contains(p, "footer copy at offset 0") {
		t.Errorf("Check report:\n%s", p)
	}
	binary.BigEndian.PutUint32(m.data[1536+8:], 1536/512) // block 2 on the BAT
	if p := strings.Join(Check(m, m.size()), "\n"); !strings.Contains(p, "overlaps") {
		t.Errorf("BAT overlap missed:\n%s", p)
	}
}

func TestGrowFixed(t *testing.T) {
	m := &memFile{}
	a := allocFile{m}
	d := mustCreate(t, a, Options{Type: Fixed, Size: 3 * mib})
	old := d.Size()
	d.WriteAt(bytes.Repeat([]byte{5}, 512), old-512)
	if err := d.Grow(old - mib); !errors.Is(err, ErrShrink) {
		t.Errorf("shrink: %v", err)
	}
	if err := d.Grow(10 * mib); err != nil {
		t.Fatal(err)
	}
	if d.Size() != 10514432 || m.size() != 10514432+512 || d.Footer().Geometry != (Geometry{302, 4, 17}) || d.Footer().OriginalSize != uint64(old) {
		t.Fatalf("after grow: size %d file %d footer %+v", d.Size(), m.size(), d.Footer())
	}
	if last := m.allocs[len(m.allocs)-1]; last != [2]int64{old, 10514432 - old} {
		t.Errorf("grow allocation %v", last)
	}
	p := make([]byte, 1024)
	d.ReadAt(p, old-512)
	if !bytes.Equal(p[:512], bytes.Repeat([]byte{5}, 512)) || !bytes.Equal(p[512:], make([]byte, 512)) {
		t.Error("data before/after the old end is wrong (old footer not cleared?)")
	}
	if err := d.Grow(d.Size()); err != nil {
		t.Errorf("same-size grow: %v", err)
	}
	assertClean(t, m, m.size())
}

func TestGrowDynamic(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		write    bool  // allocate blocks before growing
		newSize  int64 // relative to block counts
		relocate bool
	}{
		{"within BAT entries", true, 3*mib + 100*kib, false},
		{"in BAT padding", true, 30 * mib, false},
		{"no blocks, BAT extends over footer", false, 48 * mib, false},
		{"blocks after BAT, relocate", true, 48 * mib, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &memFile{}
			d := mustCreate(t, m, Options{Type: Dynamic, Size: 3 * mib, BlockSize: 256 * kib})
			ref := make([]byte, d.Size())
			if tc.write {
				for off := int64(0); off+64 < d.Size(); off += 300 * kib {
					p := []byte(fmt.Sprintf("block at %d", off))
					d.WriteAt(p, off)
					copy(ref[off:], p)
				}
			}
			if err := d.Grow(tc.newSize); err != nil {
				t.Fatal(err)
			}
			want, _ := RoundSize(tc.newSize)
			if d.Size() != want {
				t.Fatalf("size %d, want %d", d.Size(), want)
			}
			if moved := d.hdr.TableOffset != 1536; moved != tc.relocate {
				t.Errorf("BAT at %d, relocation expected: %v", d.hdr.TableOffset, tc.relocate)
			}
			assertClean(t, m, m.size())
			d2, err := Open(m, m.size())
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, d2.Size())
			if _, err := d2.ReadAt(got, 0); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[:len(ref)], ref) || !bytes.Equal(got[len(ref):], make([]byte, len(got)-len(ref))) {
				t.Fatal("contents changed by Grow")
			}
			// The grown area is writable and the image stays clean.
			if _, err := d2.WriteAt([]byte("tail"), d2.Size()-4); err != nil {
				t.Fatal(err)
			}
			assertClean(t, m, m.size())
		})
	}
}

func TestConcurrentAccess(t *testing.T) {
	t.Parallel()
	m := &memFile{}
	d := mustCreate(t, m, Options{Type: Dynamic, Size: 16 * mib, BlockSize: 256 * kib})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			p := bytes.Repeat([]byte{byte(g + 1)}, 64*1024)
			for i := 0; i < 8; i++ {
				off := int64(g*8+i) * 256 * kib
				if _, err := d.WriteAt(p, off); err != nil {
					t.Error(err)
				}
				q := make([]byte, len(p))
				if _, err := d.ReadAt(q, off); err != nil || !bytes.Equal(p, q) {
					t.Errorf("concurrent read back: %v", err)
				}
			}
		}(g)
	}
	wg.Wait()
	assertClean(t, m, m.size())
}

func TestOSFileAllocatesFixed(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f.vhd"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := mustCreate(t, OSFile(f), Options{Type: Fixed, Size: 8 * mib})
	st, _ := f.Stat()
	if st.Size() != d.FileSize() {
		t.Fatalf("file %d bytes, want %d", st.Size(), d.FileSize())
	}
	if used := allocatedBytes(st); used >= 0 && used < 8*mib && allocate(f, 0, 1) == nil {
		t.Errorf("fallocate supported but only %d bytes allocated", used)
	}
	assertClean(t, f, st.Size())
}
