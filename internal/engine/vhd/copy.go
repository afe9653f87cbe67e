package vhd

import (
	"bytes"
	"context"
	"fmt"
)

// Copy writes into dst (discarding its contents) a new standalone disk
// of opts.Type (Fixed or Dynamic; opts.Size is ignored: the copy has
// src's size) holding src's virtual bytes — for a differencing disk, the
// merged view of the whole chain. It is the full copy a clone makes
// when asked not to be a differencing child. Regions no disk in the
// chain holds are skipped without reading, and all-zero blocks are not
// written, so a dynamic copy stays sparse. The copy gets its own UUID.
func Copy(ctx context.Context, dst File, src *Disk, opts Options) (*Disk, error) {
	opts.Size = src.Size()
	if opts.BlockSize == 0 {
		opts.BlockSize = src.BlockSize()
	}
	d, err := Create(dst, opts)
	if err != nil {
		return nil, err
	}
	if d.Size() != src.Size() {
		// RoundSize moved a size the source's footer does not tie to its
		// geometry (e.g. from another creator): keep the source's.
		return nil, fmt.Errorf("vhd: cannot copy a %d-byte disk: its size is not a whole number of CHS cylinders (a copy would be %d bytes)", src.Size(), d.Size())
	}
	chunk := opts.BlockSize
	if chunk == 0 || opts.Type == Fixed {
		chunk = DefaultBlockSize
	}
	buf := make([]byte, chunk)
	zero := make([]byte, chunk)
	size := src.Size()
	for off := int64(0); off < size; off += chunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := min(chunk, size-off)
		if !src.holds(off, n) {
			continue
		}
		if _, err := src.ReadAt(buf[:n], off); err != nil {
			return nil, fmt.Errorf("vhd: reading source at %d: %w", off, err)
		}
		if bytes.Equal(buf[:n], zero[:n]) {
			continue
		}
		if _, err := d.WriteAt(buf[:n], off); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// holds reports whether any disk in d's chain may hold data in
// [off, off+n): a fixed disk always may, a dynamic or differencing one
// where a block is allocated.
func (d *Disk) holds(off, n int64) bool {
	for p := d; p != nil; p = p.parent {
		p.mu.RLock()
		h := p.hdr == nil
		if !h {
			bs := int64(p.hdr.BlockSize)
			for i := off / bs; i <= (off+n-1)/bs && i < int64(len(p.bat)); i++ {
				if p.bat[i] != unallocated {
					h = true
					break
				}
			}
		}
		p.mu.RUnlock()
		if h {
			return true
		}
	}
	return false
}
