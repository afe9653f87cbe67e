package kayofs

import (
	"fmt"
	"io"
)

// Recorder is an in-memory file that records what a formatter writes
// (vhd.Create: it has ReadAt, WriteAt, Truncate and Allocate) so the file
// can be created with CreateFiles, in the transaction of its directory:
//
//	var rec kayofs.Recorder
//	vhd.Create(&rec, opts)
//	nf, _ := rec.NewFile("WEB01.vhd")
//	v.CreateFiles("WEB01", []kayofs.NewFile{nf, {Name: "WEB01.xml", Data: xml}})
//
// It holds one written range beside the reserved size; writes that would
// leave a gap inside the range are refused (ErrInvalid).
type Recorder struct {
	alloc int64 // reserved size (reads as zeros)
	off   int64
	data  []byte
}

func (r *Recorder) size() int64 { return max(r.alloc, r.off+int64(len(r.data))) }

// WriteAt records p at off; it must touch or overlap what is recorded.
func (r *Recorder) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%w: offset %d", ErrInvalid, off)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if len(r.data) == 0 {
		r.off, r.data = off, append([]byte(nil), p...)
		return len(p), nil
	}
	end := r.off + int64(len(r.data))
	if off > end || off+int64(len(p)) < r.off {
		return 0, fmt.Errorf("%w: recorder holds [%d,%d); a write at %d would leave a gap", ErrInvalid, r.off, end, off)
	}
	if off < r.off {
		r.data = append(make([]byte, r.off-off), r.data...)
		r.off = off
	}
	if e := off + int64(len(p)); e > r.off+int64(len(r.data)) {
		r.data = append(r.data, make([]byte, e-r.off-int64(len(r.data)))...)
	}
	copy(r.data[off-r.off:], p)
	return len(p), nil
}

// ReadAt reads what was recorded; the rest of the size reads as zeros.
func (r *Recorder) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%w: offset %d", ErrInvalid, off)
	}
	sz := r.size()
	if off >= sz {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), sz-off))
	clear(p[:n])
	if lo, hi := max(off, r.off), min(off+int64(n), r.off+int64(len(r.data))); lo < hi {
		copy(p[lo-off:hi-off], r.data[lo-r.off:hi-r.off])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Truncate to 0 forgets everything; a larger size only reserves (the
// file reads as zeros there), a cut into the recorded bytes is refused.
func (r *Recorder) Truncate(size int64) error {
	switch {
	case size < 0:
		return fmt.Errorf("%w: size %d", ErrInvalid, size)
	case size == 0:
		*r = Recorder{}
	case size < r.off+int64(len(r.data)):
		return fmt.Errorf("%w: truncating recorded bytes [%d,%d) to %d", ErrInvalid, r.off, r.off+int64(len(r.data)), size)
	default:
		r.alloc = size
	}
	return nil
}

// Allocate reserves [off, off+n) as unwritten space.
func (r *Recorder) Allocate(off, n int64) error {
	if off < 0 || n < 0 {
		return fmt.Errorf("%w: allocate %d at %d", ErrInvalid, n, off)
	}
	r.alloc = max(r.alloc, off+n)
	return nil
}

// NewFile is the recorded file, named name, for CreateFiles.
func (r *Recorder) NewFile(name string) (NewFile, error) {
	if err := validName(name); err != nil {
		return NewFile{}, err
	}
	return NewFile{Name: name, Allocate: r.alloc, Off: r.off, Data: r.data}, nil
}
