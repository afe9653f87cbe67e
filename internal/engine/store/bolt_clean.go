package store

import (
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The full check (walk and bbolt's Tx.Check) reads the whole file: about
// 30-45 ms for 5,000 records of 1 KiB, 0.7-1 s for 60,000, against 1-3 ms
// for an open without it (BenchmarkOpenBoltFullCheck, BenchmarkOpenBolt-
// Unchecked on a shared 2-core machine). Every plugin
// process opens the store, so OpenBolt runs it only when the file was not
// left cleanly: a sidecar file records size, modification time and
// transaction ID when this store closes a file it committed to (still
// holding the file's lock: bolt_keep.go) and after each full check that
// passed; it also sets the modification time precisely (markClean). A
// file changed any other way (a crash between commit and record, another
// program, damage on disk) no longer matches, and the next OpenBolt checks
// it in full. The cheap checks (checkMeta) run on every open regardless.

// CleanFile is the sidecar of the database at path.
func CleanFile(path string) string { return path + ".clean" }

// fileState is what the sidecar records.
type fileState struct {
	size, mtime int64
	txid        uint64
}

func (s fileState) String() string {
	return fmt.Sprintf("kayo-clean v1 %d %d %d", s.size, s.mtime, s.txid)
}

func stateOf(h *handle, path string) (fileState, error) {
	st, err := h.file.Stat()
	if err != nil {
		return fileState{}, err
	}
	m, err := checkMeta(path, h.file, st.Size())
	if err != nil {
		return fileState{}, err
	}
	return fileState{size: st.Size(), mtime: st.ModTime().UnixNano(), txid: m.txid}, nil
}

// markClean records h's file as left cleanly. Failing to is harmless: the
// next OpenBolt checks the file in full.
func markClean(h *handle, path string) {
	// A write stamps the file with the kernel's coarse clock (ticks of
	// milliseconds); this precise time tells a later write within the
	// same tick apart.
	if err := os.Chtimes(path, time.Time{}, time.Now()); err != nil {
		return
	}
	s, err := stateOf(h, path)
	if err != nil {
		return
	}
	line := s.String()
	sum := fnv.New64a()
	_, _ = sum.Write([]byte(line))
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".clean-*")
	if err != nil {
		return
	}
	_, werr := fmt.Fprintf(f, "%s %x\n", line, sum.Sum64())
	if cerr := f.Close(); werr != nil || cerr != nil || os.Rename(f.Name(), CleanFile(path)) != nil {
		_ = os.Remove(f.Name())
	}
}

// leftClean reports whether the sidecar matches h's file.
func leftClean(h *handle, path string) bool {
	s, err := stateOf(h, path)
	if err != nil {
		return false
	}
	b, err := os.ReadFile(CleanFile(path))
	if err != nil {
		return false
	}
	text := strings.TrimSuffix(string(b), "\n")
	i := strings.LastIndexByte(text, ' ')
	if i < 0 {
		return false
	}
	line, sumHex := text[:i], text[i+1:]
	sum := fnv.New64a()
	_, _ = sum.Write([]byte(line))
	return line == s.String() && sumHex == fmt.Sprintf("%x", sum.Sum64())
}
