// Package kayotorture is a multi-node torture workload for Kayo FS in the
// style of ocfs2-test's multi-node tests: every node creates, writes,
// fsyncs, reads back, grows, renames and deletes files of its own in one
// shared volume at the same time, and logs each operation it is about to
// do (TRY) and each one that returned (ACK). Verify then checks, from the
// logs alone, that every acknowledged operation is on the volume.
//
// The nodes run in QEMU guests with kernels of their own (rig_test.go,
// the guest binary in guestbin/); the logs travel over their serial
// consoles.
package kayotorture

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"path"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

// Log lines (one per line, space separated, after a "KT " marker so they
// stand out of a console's noise):
//
//	KT TRY <node> <seq> C|G|R|D <id> <arg>   about to create (arg: size), grow (arg: new size), rename (arg: new path), delete
//	KT ACK <node> <seq>                      the operation with that seq returned, durably (after fsync)
//	KT ERR <node> <seq> <error>              it failed
//	KT DONE <node> <ops>                     the workload ended and the volume was unmounted
const Marker = "KT"

// Content is the byte at offset off of file id: position-based, so a file
// grown by appends is verified the same way as one written at once.
func Content(id string, off int64) byte {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(off>>6))
	h := crc32.ChecksumIEEE(append([]byte(id), b[:]...))
	return byte(h >> (8 * (off & 3)))
}

func fill(id string, off int64, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = Content(id, off+int64(i))
	}
	return b
}

// Options of one node's workload.
type Options struct {
	Node     string
	Duration time.Duration
	Out      io.Writer
	Seed     uint64
	// MaxFiles bounds the node's live files (deletes win above it).
	MaxFiles int
	// MinOps: it goes on past Duration until it has done this many
	// operations (a test that needs some work done on a loaded machine).
	MinOps int
}

type liveFile struct {
	id   string
	path string
	size int64
}

// Run runs the workload on v until the duration ends, ctx ends or an
// operation fails (its error is returned; a fenced node's refused writes
// wrap kayofs.ErrFenced).
func Run(ctx context.Context, v *kayofs.Volume, o Options) (int, error) {
	if o.MaxFiles <= 0 {
		o.MaxFiles = 24
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x6b61796f))
	dir := o.Node
	if err := v.MkdirAll(dir); err != nil {
		return 0, err
	}
	say := func(f string, a ...any) { _, _ = fmt.Fprintf(o.Out, Marker+" "+f+"\n", a...) }
	var files []*liveFile
	seq, ids := 0, 0
	end := time.Now().Add(o.Duration)
	for (time.Now().Before(end) || seq < o.MinOps) && ctx.Err() == nil {
		seq++
		var err error
		switch op := rng.IntN(10); {
		case len(files) == 0 || (op < 4 && len(files) < o.MaxFiles):
			ids++
			f := &liveFile{id: fmt.Sprintf("%s.%d", o.Node, ids), size: 1 + rng.Int64N(96<<10)}
			f.path = path.Join(dir, fmt.Sprintf("f%d", ids))
			say("TRY %s %d C %s %d", o.Node, seq, f.id, f.size)
			err = create(v, f)
			if err == nil {
				files = append(files, f)
			}
		case op < 6:
			f := files[rng.IntN(len(files))]
			size := f.size + 1 + rng.Int64N(64<<10)
			say("TRY %s %d G %s %d", o.Node, seq, f.id, size)
			err = grow(v, f, size)
		case op < 8:
			f := files[rng.IntN(len(files))]
			np := path.Join(dir, fmt.Sprintf("r%d-%d", seq, rng.IntN(1000)))
			say("TRY %s %d R %s %s", o.Node, seq, f.id, np)
			if err = v.Rename(f.path, np); err == nil {
				f.path = np
			}
		default:
			i := rng.IntN(len(files))
			say("TRY %s %d D %s -", o.Node, seq, files[i].id)
			if err = v.Remove(files[i].path); err == nil {
				files = append(files[:i], files[i+1:]...)
			}
		}
		if err != nil {
			say("ERR %s %d %v", o.Node, seq, err)
			return seq, err
		}
		say("ACK %s %d", o.Node, seq)
	}
	return seq, nil
}

// create writes the file whole, fsyncs and reads it back.
func create(v *kayofs.Volume, f *liveFile) error {
	h, err := v.Create(f.path)
	if err != nil {
		return err
	}
	if _, err := h.WriteAt(fill(f.id, 0, int(f.size)), 0); err != nil {
		return err
	}
	if err := h.Sync(); err != nil {
		return err
	}
	return readBack(v, f.path, f.id, 0, f.size)
}

// grow appends to size in two unaligned writes, fsyncs and reads back.
func grow(v *kayofs.Volume, f *liveFile, size int64) error {
	h, err := v.Open(f.path)
	if err != nil {
		return err
	}
	mid := f.size + (size-f.size)/2
	if _, err := h.WriteAt(fill(f.id, f.size, int(mid-f.size)), f.size); err != nil {
		return err
	}
	if _, err := h.WriteAt(fill(f.id, mid, int(size-mid)), mid); err != nil {
		return err
	}
	if err := h.Sync(); err != nil {
		return err
	}
	if err := readBack(v, f.path, f.id, f.size, size); err != nil {
		return err
	}
	f.size = size
	return nil
}

// ErrMismatch: a file read back does not hold what was written.
var ErrMismatch = errors.New("kayotorture: read back differs from what was written")

func readBack(v *kayofs.Volume, p, id string, from, to int64) error {
	h, err := v.Open(p)
	if err != nil {
		return err
	}
	got := make([]byte, to-from)
	if _, err := h.ReadAt(got, from); err != nil {
		return fmt.Errorf("reading back %s [%d,%d): %w", p, from, to, err)
	}
	if want := fill(id, from, int(to-from)); !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && got[i] == want[i] {
			i++
		}
		return fmt.Errorf("%w: %s (id %s) at offset %d", ErrMismatch, p, id, from+int64(i))
	}
	return nil
}
