package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// Damage detection. bbolt trusts its file: a truncated file or a damaged
// page makes it read past the end of its memory map (a fault that kills
// the process) or fail an assertion (a panic). The store checks what is
// cheap on every open (both meta pages, the file holding every page below
// the high-water mark), runs bbolt's full consistency check once per
// OpenBolt, and turns any panic or fault inside bbolt into a CorruptError.

// CorruptError says the database file failed a check. It matches ErrCorrupt.
type CorruptError struct {
	Path   string
	Detail string
	// Backup: Path is a backup, not the database in use.
	Backup bool
}

func (e *CorruptError) Error() string {
	if e.Backup {
		return fmt.Sprintf("the backup %s is damaged (%s): it cannot be restored; use another backup", e.Path, e.Detail)
	}
	return fmt.Sprintf("the cluster database %s is damaged (%s); nothing was changed. Restore the last backup with "+
		"`kayoctl restore BACKUP_FILE` (it keeps the damaged file next to it; `kayoctl backup FILE` takes backups)",
		e.Path, e.Detail)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

func corrupt(path, format string, a ...any) error {
	return &CorruptError{Path: path, Detail: fmt.Sprintf(format, a...)}
}

// bbolt's on-disk format (go.etcd.io/bbolt internal/common): a 16-byte page
// header, then on pages 0 and 1 the meta record, native byte order.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	pageHeaderSize = 16
	metaSumBytes   = 56 // the meta record up to its checksum
	noFreelist     = ^uint64(0)
)

// boltMeta is what the store checks of one meta page.
type boltMeta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	pgid     uint64 // high-water mark: pages [0, pgid) are in use
	txid     uint64
}

// parseMeta decodes and validates the meta record of page buf.
func parseMeta(buf []byte) (boltMeta, error) {
	if len(buf) < pageHeaderSize+metaSumBytes+8 {
		return boltMeta{}, errors.New("short")
	}
	m := buf[pageHeaderSize:]
	ne := binary.NativeEndian
	if ne.Uint32(m[0:]) != boltMagic {
		return boltMeta{}, errors.New("not a bbolt meta page (bad magic)")
	}
	if v := ne.Uint32(m[4:]); v != boltVersion {
		return boltMeta{}, fmt.Errorf("unsupported bbolt version %d", v)
	}
	h := fnv.New64a()
	_, _ = h.Write(m[:metaSumBytes])
	if h.Sum64() != ne.Uint64(m[metaSumBytes:]) {
		return boltMeta{}, errors.New("checksum mismatch")
	}
	return boltMeta{pageSize: ne.Uint32(m[8:]), root: ne.Uint64(m[16:]), freelist: ne.Uint64(m[32:]),
		pgid: ne.Uint64(m[40:]), txid: ne.Uint64(m[48:])}, nil
}

// checkMeta checks the meta pages of the bbolt file f (of size bytes) and
// that the file holds every page they reference. It reads two pages: cheap
// enough for every open. The caller holds the file's lock, so no commit
// is writing a meta page meanwhile.
func checkMeta(path string, f io.ReaderAt, size int64) (boltMeta, error) {
	if size == 0 {
		return boltMeta{}, corrupt(path, "the file is empty")
	}
	page0 := make([]byte, 4096)
	n, err := f.ReadAt(page0, 0)
	if n < pageHeaderSize+metaSumBytes+8 {
		return boltMeta{}, corrupt(path, "the file is %d bytes, too short for a database (%v)", size, err)
	}
	m0, err0 := parseMeta(page0[:n])
	ps := int64(m0.pageSize)
	if err0 != nil {
		// The page size is in the damaged page: take the OS page size,
		// which bbolt chose when it created the file.
		ps = int64(os.Getpagesize())
	}
	if ps < 512 || ps > 1<<16 || ps&(ps-1) != 0 {
		return boltMeta{}, corrupt(path, "meta page 0 gives an invalid page size %d", ps)
	}
	page1 := make([]byte, 4096)
	n, err = f.ReadAt(page1, ps)
	if n < pageHeaderSize+metaSumBytes+8 {
		return boltMeta{}, corrupt(path, "the file is %d bytes, too short to hold meta page 1 (%v)", size, err)
	}
	m1, err1 := parseMeta(page1[:n])
	// bbolt would silently fall back to the other meta page, losing the
	// last commit; a cluster database refuses instead.
	switch {
	case err0 != nil && err1 != nil:
		return boltMeta{}, corrupt(path, "both meta pages are invalid: page 0: %v; page 1: %v", err0, err1)
	case err0 != nil:
		return boltMeta{}, corrupt(path, "meta page 0 is invalid: %v", err0)
	case err1 != nil:
		return boltMeta{}, corrupt(path, "meta page 1 is invalid: %v", err1)
	case m0.pageSize != m1.pageSize:
		return boltMeta{}, corrupt(path, "the meta pages disagree on the page size (%d and %d)", m0.pageSize, m1.pageSize)
	}
	for i, m := range []boltMeta{m0, m1} {
		if m.pgid < 4 || m.root < 2 || m.root >= m.pgid || (m.freelist != noFreelist && (m.freelist < 2 || m.freelist >= m.pgid)) {
			return boltMeta{}, corrupt(path, "meta page %d references pages outside the database (root %d, freelist %d, high-water mark %d)",
				i, m.root, m.freelist, m.pgid)
		}
		if need := int64(m.pgid) * ps; need > size || need/ps != int64(m.pgid) {
			return boltMeta{}, corrupt(path, "the file is %d bytes but meta page %d says it holds %d pages of %d bytes (%d bytes): it was truncated",
				size, i, m.pgid, ps, need)
		}
	}
	if m1.txid > m0.txid {
		return m1, nil
	}
	return m0, nil
}

// checkFile checks the meta pages of the file at path (see checkMeta).
func checkFile(path string) (boltMeta, error) {
	f, err := os.Open(path)
	if err != nil {
		return boltMeta{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return boltMeta{}, err
	}
	return checkMeta(path, f, st.Size())
}

// checkTx runs bbolt's consistency check over tx (every reachable page,
// the freelist, key order) and checks the store's layout. Call it only on
// a file checkMeta accepted: bbolt's check runs on a goroutine of its own,
// where a page beyond the end of the file would be a fatal fault.
func checkTx(path string, tx *bolt.Tx) error {
	var errs []string
	for err := range tx.Check() {
		if len(errs) < 5 {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return corrupt(path, "consistency check: %s", strings.Join(errs, "; "))
	}
	return nil
}

// guard runs fn, turning a panic or memory fault of bbolt into a
// CorruptError naming path. fault tells the caller that one happened, so it
// abandons the bbolt handle instead of closing it (its locks may be held).
func guard(path string, fn func() error) (fault bool, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			detail := fmt.Sprint(r)
			var re runtime.Error
			if e, ok := r.(error); ok && errors.As(e, &re) {
				detail = re.Error()
			}
			fault, err = true, corrupt(path, "bbolt failed reading a page: %s", detail)
		}
	}()
	return false, fn()
}
