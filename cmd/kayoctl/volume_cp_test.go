package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/vhd"
	"github.com/kayo-labs/terraform-provider-kayo/internal/nodeagent/workexec"
)

// volume cp puts a template on the volume (refusing a *.vhd that is no
// VHD, writing nothing), and volume rm deletes it.
func TestVolumeCpRm(t *testing.T) {
	dir := newDataDir(t, 10)
	ctx := context.Background()
	e, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	vol, err := e.CreateVolume(ctx, engine.VolumeSpec{Cluster: "HVCLUSTER", LUN: "lun0", SizeGiB: 10, Label: "VMSTORE",
		DriveLetter: "O", BlockSize: 4096, NodeSlots: 16})
	if err != nil {
		t.Fatal(err)
	}
	_ = e.Close()
	local := t.TempDir()
	junk := filepath.Join(local, "junk.vhd")
	if err := os.WriteFile(junk, []byte(strings.Repeat("junk", 300)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := kayoctl(t, nil, "--data-dir", dir, "volume", "cp", junk, `HVCLUSTER/O:templates\base.vhd`)
	if code == 0 || !strings.Contains(errOut, "not a valid VHD") {
		t.Fatalf("cp of a junk .vhd: exit %d: %s", code, errOut)
	}
	good := filepath.Join(local, "base.vhd")
	f, err := os.Create(good)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vhd.Create(vhd.OSFile(f), vhd.Options{Type: vhd.Dynamic, Size: 8 << 20}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	code, out, errOut := kayoctl(t, nil, "--data-dir", dir, "volume", "cp", good, vol.ID+`:templates\base.vhd`)
	if code != 0 || !strings.Contains(out, `O:\templates\base.vhd: vhd,`) {
		t.Fatalf("cp: exit %d: %s %s", code, out, errOut)
	}
	// A data file lands byte for byte (sent to the node's executor in
	// chunks through the database).
	data := make([]byte, 5<<20+777)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	clear(data[1<<20 : 2<<20])
	blob := filepath.Join(local, "blob.bin")
	if err := os.WriteFile(blob, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := kayoctl(t, nil, "--data-dir", dir, "volume", "cp", blob, `HVCLUSTER/O:data\blob.bin`); code != 0 ||
		!strings.Contains(out, fmt.Sprintf(`O:\data\blob.bin: file, %d bytes`, len(data))) {
		t.Fatalf("cp of a data file: exit %d: %s %s", code, out, errOut)
	}
	if got := volumeBytes(t, dir, vol, "data/blob.bin"); !bytes.Equal(got, data) {
		t.Errorf("the volume holds %d bytes that differ from the %d put", len(got), len(data))
	}
	// Past what a put carries through the database: refused, naming the
	// argument's file and the limit, nothing written.
	huge := filepath.Join(local, "huge.bin")
	if err := os.WriteFile(huge, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(huge, engine.MaxPutBytesEmbedded+1); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = kayoctl(t, nil, "--data-dir", dir, "volume", "cp", huge, "HVCLUSTER/O:huge.bin")
	if code == 0 || !strings.Contains(errOut, huge) || !strings.Contains(errOut, fmt.Sprintf("up to %d bytes", engine.MaxPutBytesEmbedded)) {
		t.Fatalf("cp past the cap: exit %d: %s", code, errOut)
	}
	if code, _, errOut := kayoctl(t, nil, "--data-dir", dir, "volume", "rm", "HVCLUSTER/O:data/blob.bin"); code != 0 {
		t.Fatalf("rm: exit %d: %s", code, errOut)
	}
	if code, _, errOut := kayoctl(t, nil, "--data-dir", dir, "volume", "rm", "HVCLUSTER/O:templates/base.vhd"); code != 0 {
		t.Fatalf("rm: exit %d: %s", code, errOut)
	}
	e, err = engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if fs, err := e.ListVolumeFiles(ctx, vol.ID); err != nil || len(fs) != 0 {
		t.Fatalf("files after rm: %v %v", fs, err)
	}
}

// volumeBytes reads p off vol through its first node's mount.
func volumeBytes(t *testing.T, dir string, vol engine.Volume, p string) []byte {
	t.Helper()
	e, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var out []byte
	var node string
	for n := range vol.Mounts {
		if node == "" || n < node {
			node = n
		}
	}
	err = e.WithVolume(context.Background(), vol.ID, node, func(fv *kayofs.Volume) error {
		f, err := fv.Open(p)
		if err != nil {
			return err
		}
		size, err := f.Size()
		if err != nil {
			return err
		}
		out = make([]byte, size)
		if _, err := f.ReadAt(out, 0); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
