package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// A put's bytes go to a node's executor through the cluster database
// (nodework.go), so the control plane needs no LUN: the caller writes the
// local file as chunk records under volume-file-chunks/<volume>/<stream>/,
// a batch at a time, and asks the executor of one of the volume's nodes
// to write each batch into the put's temporary file on its own mount
// (workVolumeFilePut). The last batch's request also has the executor
// sync the file, check its SHA-256 and rename it into place. The caller
// deletes each batch's chunks once its request is done; chunks a crashed
// put left are deleted by the next put or removal on the volume
// (gcPutChunks). Every request is idempotent: its chunks stay until its
// caller saw it done, and the first batch truncates the temporary file.

// workVolumeFilePut writes a batch of a put's chunks on the node (args:
// volumeFilePutArgs).
const workVolumeFilePut = "volume.file_put"

const (
	// putChunkSize is a chunk record's size: well under etcd's default
	// request limit (1.5 MiB).
	putChunkSize = 512 << 10
	// putBatchChunks bounds the chunks of a put in the database at once
	// (one batch, 4 MiB).
	putBatchChunks = 8
	// MaxPutBytesEtcd caps a put's file with the database on etcd: its
	// chunks, deleted, stay in etcd's history until it compacts, and its
	// default quota is 2 GiB.
	MaxPutBytesEtcd = 256 << 20
	// MaxPutBytesEmbedded caps a put's file on the embedded database,
	// which reuses the pages of deleted chunks.
	MaxPutBytesEmbedded = 16 << 30
)

// volumeFilePutArgs asks a node's executor to write chunks From..From+Count
// of Stream into Path's temporary file on Volume; First truncates it
// first, Final then sets its Size, syncs it, checks its SHA256 and
// renames it to Path.
type volumeFilePutArgs struct {
	Volume string `json:"volume"`
	Path   string `json:"path"`
	Stream string `json:"stream"`
	From   int64  `json:"from"`
	Count  int    `json:"count"`
	First  bool   `json:"first,omitempty"`
	Final  bool   `json:"final,omitempty"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// putLimit is the largest file a put carries through this engine's
// database.
func (e *Engine) putLimit() int64 {
	if e.remoteDB {
		return MaxPutBytesEtcd
	}
	return MaxPutBytesEmbedded
}

// checkPutSize refuses a put of src (size bytes) past putLimit.
func (e *Engine) checkPutSize(src string, size int64) error {
	limit := e.putLimit()
	if size <= limit {
		return nil
	}
	where := "the embedded database"
	if e.remoteDB {
		where = "etcd (its deleted records stay in its history until it compacts; its default quota is 2 GiB)"
	}
	return &InputError{Attribute: "source", Value: src, Detail: fmt.Sprintf("%q is %d bytes; a put carries the file to a node's "+
		"agent through the cluster database, up to %d bytes (%d MiB) on %s: use a smaller file (a dynamic VHD rather than a fixed one)",
		src, size, limit, limit>>20, where)}
}

// CheckVolumeFilePut is the plan's check of a put of the local file src
// (size bytes): its size against what a put carries through the
// database. The volume is not needed: a node's agent writes the file.
func (e *Engine) CheckVolumeFilePut(src string, size int64) error { return e.checkPutSize(src, size) }

// sendVolumeFile carries the local file src (size bytes, SHA-256 sum) to
// vp on vol through node's executor, as stream.
func (e *Engine) sendVolumeFile(ctx context.Context, vol Volume, node, stream, src, vp string, size int64, sum string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	obj := volumeFileWorkObject(vol.ID, vp)
	h := sha256.New()
	buf := make([]byte, putChunkSize)
	var seq int64
	var res workResult
	for first := true; ; first = false {
		a := volumeFilePutArgs{Volume: vol.ID, Path: vp, Stream: stream, From: seq, First: first, Size: size, SHA256: sum}
		var keys []string
		for a.Count < putBatchChunks && seq*putChunkSize < size {
			n, err := io.ReadFull(in, buf[:min(int64(putChunkSize), size-seq*putChunkSize)])
			if err != nil {
				return fmt.Errorf("the local file %s changed while it was copied (reading at byte %d: %w)", src, seq*putChunkSize, err)
			}
			h.Write(buf[:n])
			var data []byte
			if !allZero(buf[:n]) {
				data = buf[:n]
			}
			key := putChunkKey(vol.ID, stream, seq)
			if _, err := e.st.Commit(ctx, nil, []store.Op{store.Put(key, data)}); err != nil {
				return err
			}
			keys = append(keys, key)
			seq++
			a.Count++
		}
		a.Final = seq*putChunkSize >= size
		if a.Final {
			if got := hex.EncodeToString(h.Sum(nil)); got != sum {
				e.deleteKeys(ctx, keys)
				return fmt.Errorf("the local file %s changed while it was copied (sha256 %s, then %s)", src, sum, got)
			}
		}
		args, err := json.Marshal(a)
		if err != nil {
			return err
		}
		res, err = e.nodeWork(ctx, node, WorkRequest{Op: workVolumeFilePut, Object: obj, Args: args})
		e.deleteKeys(ctx, keys) // done or failed: either way this batch is over
		if err != nil {
			return err
		}
		if a.Final {
			e.dropResult(ctx, node, obj, res)
			return nil
		}
	}
}

func allZero(b []byte) bool { return len(bytes.TrimLeft(b, "\x00")) == 0 }

// deleteKeys deletes keys, even when ctx has ended (a put given up).
func (e *Engine) deleteKeys(ctx context.Context, keys []string) {
	if len(keys) == 0 {
		return
	}
	ops := make([]store.Op, 0, len(keys))
	for _, k := range keys {
		ops = append(ops, store.Del(k))
	}
	_, _ = e.st.Commit(context.WithoutCancel(ctx), nil, ops)
}

// gcPutChunks deletes the chunks of volume's puts that no put is writing
// any more (finished, crashed or taken over): a stream is live while a
// file record of the volume is Writing with it.
func (e *Engine) gcPutChunks(ctx context.Context, volume string) error {
	// The chunks first: a chunk seen here was written after its put's
	// intent, so the records read next name its stream while it runs.
	kvs, _, err := e.st.List(ctx, volumeFileChunksPrefix+volume+"/")
	if err != nil || len(kvs) == 0 {
		return err
	}
	files, err := e.ListVolumeFiles(ctx, volume)
	if err != nil {
		return err
	}
	live := map[string]bool{}
	for _, f := range files {
		if f.Writing && f.Stream != "" {
			live[f.Stream] = true
		}
	}
	var dead []string
	for _, kv := range kvs {
		rest := strings.TrimPrefix(kv.Key, volumeFileChunksPrefix+volume+"/")
		if stream, _, _ := strings.Cut(rest, "/"); !live[stream] {
			dead = append(dead, kv.Key)
		}
	}
	for len(dead) > 0 {
		n := min(len(dead), 64)
		e.deleteKeys(ctx, dead[:n])
		dead = dead[n:]
	}
	return nil
}

// volumeFilePutHere (run by node's executor) writes a's chunks into the
// put's temporary file and, for the final batch, checks and renames it.
// A re-run redoes the same writes; a final batch re-run after its rename
// finds the file in place with its checksum.
func (e *Engine) volumeFilePutHere(ctx context.Context, a volumeFilePutArgs, node string) error {
	if _, _, err := VolumeFilePath("path", a.Path); err != nil {
		return err
	}
	keys := make([]string, a.Count)
	for i := range keys {
		keys[i] = putChunkKey(a.Volume, a.Stream, a.From+int64(i))
	}
	var kvs []store.KV
	for len(keys) > 0 { // GetMany takes at most store.MaxGetMany keys
		n := min(len(keys), store.MaxGetMany)
		got, err := e.st.GetMany(ctx, keys[:n]...)
		if err != nil {
			return err
		}
		kvs, keys = append(kvs, got...), keys[n:]
	}
	tmp := a.Path + tmpSuffix
	return e.WithVolume(ctx, a.Volume, node, func(fv *kayofs.Volume) error {
		if a.Final && !a.First {
			if _, err := fv.Stat(tmp); errors.Is(err, kayofs.ErrNotExist) {
				// Renamed before a crash: done if the file is this put's.
				if got, err := fileSumOn(fv, a.Path); err == nil && got == a.SHA256 {
					return nil
				}
				return fmt.Errorf("the put's temporary file %s is gone (another put or a removal of the file meanwhile)", tmp)
			}
		}
		var f *kayofs.File
		err := e.serialVolume(a.Volume, func() error {
			if dir := path.Dir(a.Path); dir != "." {
				if err := fv.MkdirAll(dir); err != nil {
					return err
				}
			}
			var err error
			f, err = openOrCreate(fv, tmp)
			return err
		})
		if err != nil {
			return err
		}
		if a.First {
			if err := f.Truncate(0); err != nil {
				return err
			}
		}
		for i, kv := range kvs {
			if !kv.Exists() {
				return fmt.Errorf("chunk %d of put %s is missing from the cluster database (the put was given up or taken over)", a.From+int64(i), a.Stream)
			}
			if len(kv.Value) > 0 {
				if _, err := f.WriteAt(kv.Value, (a.From+int64(i))*putChunkSize); err != nil {
					return err
				}
			}
		}
		if !a.Final {
			return f.Sync()
		}
		if err := f.Truncate(a.Size); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		got, err := fileSum(f)
		if err != nil {
			return err
		}
		if got != a.SHA256 {
			return fmt.Errorf("%s on the volume has sha256 %s after the put, want %s (the put is not renamed into place; the next put redoes it)", tmp, got, a.SHA256)
		}
		return e.serialVolume(a.Volume, func() error { return fv.Rename(tmp, a.Path) })
	})
}

// fileSumOn is the SHA-256 of p on fv.
func fileSumOn(fv *kayofs.Volume, p string) (string, error) {
	f, err := fv.Open(p)
	if err != nil {
		return "", err
	}
	return fileSum(f)
}

// fileSum is the SHA-256 of f's content.
func fileSum(f *kayofs.File) (string, error) {
	size, err := f.Size()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		h.Write(buf[:n])
		off += int64(n)
		if err != nil && !(errors.Is(err, io.EOF) && off == size) {
			return "", err
		}
		if n == 0 {
			return "", io.ErrUnexpectedEOF
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
