package vhd

import "os"

// OSFile wraps an *os.File as a File that also implements Allocator:
// on Linux, Allocate is fallocate(2) mode 0, which reserves unwritten
// extents that read as zeros; elsewhere, or where the file system does
// not support it, Allocate reports errors.ErrUnsupported and Create
// falls back to a sparse Truncate. A bare *os.File is a File too (always
// sparse).
func OSFile(f *os.File) File { return osFile{f} }

type osFile struct{ *os.File }

func (f osFile) Allocate(off, n int64) error { return allocate(f.File, off, n) }
