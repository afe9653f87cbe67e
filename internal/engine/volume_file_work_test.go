package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

// putSource writes a local file of n MiB: random bytes with an all-zero
// MiB in the middle (holes on the volume) and a short last chunk, so a
// put spans several batches of chunks.
func putSource(t *testing.T, n int) (string, []byte) {
	t.Helper()
	data := make([]byte, n<<20+12345)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	clear(data[(n/2)<<20 : (n/2+1)<<20])
	src := filepath.Join(t.TempDir(), "base.iso.bin")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return src, data
}

// volumeFileBytes reads vp off the volume through node's mount on e.
func volumeFileBytes(t *testing.T, e *Engine, vol, node, vp string) []byte {
	t.Helper()
	var out []byte
	err := e.WithVolume(context.Background(), vol, node, func(fv *kayofs.Volume) error {
		f, err := fv.Open(vp)
		if err != nil {
			return err
		}
		size, err := f.Size()
		if err != nil {
			return err
		}
		out = make([]byte, size)
		_, err = f.ReadAt(out, 0)
		if errors.Is(err, io.EOF) {
			err = nil
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// noPutChunks fails when chunk records of a put are left.
func noPutChunks(t *testing.T, e *Engine) {
	t.Helper()
	kvs, _, err := e.st.List(context.Background(), volumeFileChunksPrefix)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range kvs {
		t.Errorf("put chunk left: %s (%d bytes)", kv.Key, len(kv.Value))
	}
}

// On etcd from a machine without the LUN and without an executor of its
// own: a put's bytes go through the database to a node's agent, which
// lands them checksum-verified; the chunk records are gone afterwards; a
// put past the database's cap is refused naming source, at plan and
// apply; the removal is the agent's too. The control plane opens no
// device throughout.
func TestVolumeFileOnEtcdWithoutTheLUN(t *testing.T) {
	ctx := context.Background()
	cp, agents, m, _ := splitOnEtcd(t)
	mustHosts(t, cp, seedSpec(y21, 21), seedSpec(y22, 22))
	if _, err := cp.CreateCluster(ctx, seedCluster("HVCLUSTER", y21, y22)); err != nil {
		t.Fatal(err)
	}
	startWorkAgent(t, agents, y21)
	startWorkAgent(t, agents, y22)
	v, err := cp.CreateVolume(ctx, seedVolume())
	if err != nil {
		t.Fatal(err)
	}
	src, data := putSource(t, 9)
	spec := VolumeFileSpec{Volume: v.ID, Path: `isos\base.bin`, Source: src}
	opened := m.DevicesOpened()
	f, err := cp.PutVolumeFile(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if f.SHA256 != hex.EncodeToString(sum[:]) || f.SizeBytes != int64(len(data)) || f.Writing || f.Stream != "" {
		t.Errorf("the put's record: %+v", f)
	}
	if got := volumeFileBytes(t, agents, v.ID, y22, "isos/base.bin"); !bytes.Equal(got, data) {
		t.Errorf("the volume holds %d bytes that differ from the %d put", len(got), len(data))
	}
	noPutChunks(t, cp)
	// Again: the same content is kept, nothing sent.
	if _, err := cp.PutVolumeFile(ctx, spec); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(t.TempDir(), "big.iso")
	if err := os.WriteFile(big, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, MaxPutBytesEtcd+1); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"plan": cp.CheckVolumeFilePut(big, MaxPutBytesEtcd+1),
		"apply": func() error {
			_, err := cp.PutVolumeFile(ctx, VolumeFileSpec{Volume: v.ID, Path: "big.bin", Source: big})
			return err
		}(),
	} {
		var in *InputError
		if !errors.As(err, &in) || in.Attribute != "source" || in.Value != big || !strings.Contains(err.Error(), "268435456 bytes (256 MiB)") {
			t.Errorf("%s of a put past the cap: %v, want an error naming source and the limit", name, err)
		}
	}
	if err := cp.DeleteVolumeFile(ctx, v.ID, spec.Path); err != nil {
		t.Fatal(err)
	}
	if n := m.DevicesOpened() - opened; n != 0 {
		t.Errorf("the control plane opened %d devices to put and remove a file", n)
	}
	err = agents.WithVolume(ctx, v.ID, y21, func(fv *kayofs.Volume) error {
		ents, err := fv.ReadDir("")
		if err != nil {
			return err
		}
		if len(ents) != 0 {
			t.Errorf("the volume holds %v after the file's removal (the put's directory too should go)", ents)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cp.GetVolumeFile(ctx, v.ID, spec.Path); !errors.Is(err, ErrNotFound) {
		t.Errorf("the file's record after its removal: %v", err)
	}
	noPutChunks(t, cp)
}
