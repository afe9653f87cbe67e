package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/vhd"
)

// Files put on a shared volume from a local file (kayo_volume_file,
// `kayoctl volume cp`): templates for differencing disks and ISOs for
// DVD drives. Each has a record at volume-files/<uuid>/<path> saying what
// it is; VMs name it by its path (vhd.source, dvd.path), checked against
// the record at plan time. A file is written under an intent: the record
// first (Writing), then the data into a temporary name renamed into
// place by a node's agent (volume_file_put.go), then the record
// completed; a crashed put is redone by the next.

// Volume file kinds.
const (
	FileVHD  = "vhd"
	FileISO  = "iso"
	FileData = "file"
)

// VolumeFile is a file a put placed on a volume.
type VolumeFile struct {
	Volume string `json:"volume"`
	// Path on the volume, Windows style: templates\base.vhd.
	Path      string `json:"path"`
	Kind      string `json:"kind"`
	SizeBytes int64  `json:"size_bytes"`
	SHA256    string `json:"sha256"`
	// VHDs: the disk's type and virtual size.
	VHDType     string `json:"vhd_type,omitempty"`
	VirtualSize int64  `json:"virtual_size,omitempty"`
	// Writing: a put is under way (or crashed: the next put redoes it);
	// Deleting: a delete is (VMs may no longer start to use it).
	Writing bool `json:"writing,omitempty"`
	// Stream names the chunks of the put under way (volume_file_put.go).
	Stream    string    `json:"stream,omitempty"`
	Deleting  bool      `json:"deleting,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	Revision  int64     `json:"-"`
}

// ID is the file's import ID: volume UUID, a colon, the path.
func (f VolumeFile) ID() string { return f.Volume + ":" + f.Path }

// VolumeFilePath checks p, a file's path on a volume (`templates\base.vhd`
// or with `/`), and returns it Windows style and as the volume's path
// (templates/base.vhd). attr names the attribute in errors.
func VolumeFilePath(attr, p string) (win, vol string, err error) {
	const allowed = "a relative path on the volume such as templates\\base.vhd: 1 to 8 names of 1 to 64 letters, digits, " +
		"'-', '_', '.' and spaces, without a drive letter, a leading separator or \"..\""
	els := strings.FieldsFunc(p, func(r rune) bool { return r == '\\' || r == '/' })
	if p == "" || len(els) == 0 || len(els) > 8 || strings.HasPrefix(p, `\`) || strings.HasPrefix(p, "/") ||
		strings.HasSuffix(p, `\`) || strings.HasSuffix(p, "/") || strings.Contains(p, `\\`) || strings.Contains(p, "//") {
		return "", "", invalid(attr, p, allowed)
	}
	for _, el := range els {
		if len(el) > 64 || el == "." || el == ".." || strings.HasSuffix(el, ".") || strings.HasSuffix(el, " ") ||
			strings.HasPrefix(el, " ") || strings.Contains(el, "..") || strings.HasSuffix(el, tmpSuffix) {
			return "", "", invalid(attr, p, allowed)
		}
		for _, r := range el {
			if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-' || r == '_' || r == '.' || r == ' ') {
				return "", "", invalid(attr, p, allowed)
			}
		}
		base, _, _ := strings.Cut(strings.ToUpper(el), ".")
		if slices.Contains(windowsReserved, base) {
			return "", "", invalid(attr, p, allowed)
		}
	}
	return strings.Join(els, `\`), strings.Join(els, "/"), nil
}

// tmpSuffix names the file a put writes before renaming it into place.
const tmpSuffix = ".kayo-put"

// VolumeFileSpec is what a put asks: Source, a local file, copied to Path
// on Volume.
type VolumeFileSpec struct {
	Volume string
	Path   string
	Source string
}

// inspectLocal reads the local file src and says what it is: a file
// named *.vhd must be a valid standalone VHD (fixed or dynamic) and one
// named *.iso an ISO 9660 image; errors name attribute "source".
func inspectLocal(src, volPath string) (VolumeFile, error) {
	f, err := os.Open(src)
	if err != nil {
		return VolumeFile{}, &InputError{Attribute: "source", Value: src, Detail: fmt.Sprintf("cannot read the local file: %v", err)}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return VolumeFile{}, err
	}
	if !st.Mode().IsRegular() {
		return VolumeFile{}, invalid("source", src, "a regular local file")
	}
	out := VolumeFile{Kind: FileData, SizeBytes: st.Size()}
	switch strings.ToLower(path.Ext(volPath)) {
	case ".vhd":
		out.Kind = FileVHD
		d, err := vhd.Open(vhd.OSFile(f), st.Size())
		if err != nil && errors.Is(err, vhd.ErrParentRequired) {
			return VolumeFile{}, &InputError{Attribute: "source", Value: src, Detail: "it is a differencing VHD; a template must be a " +
				"standalone (fixed or dynamic) VHD: flatten it first (e.g. qemu-img convert -O vpc)"}
		}
		if err != nil {
			return VolumeFile{}, &InputError{Attribute: "source", Value: src, Detail: fmt.Sprintf("path %s names a VHD, but the local file "+
				"is not a valid VHD (fixed or dynamic, per Microsoft's VHD format): %v", volPath, err)}
		}
		if d.Type() == vhd.Differencing {
			return VolumeFile{}, &InputError{Attribute: "source", Value: src, Detail: "it is a differencing VHD; a template must be a standalone (fixed or dynamic) VHD"}
		}
		if p := vhd.Check(vhd.OSFile(f), st.Size()); len(p) > 0 {
			return VolumeFile{}, &InputError{Attribute: "source", Value: src, Detail: "the VHD is damaged: " + strings.Join(p, "; ")}
		}
		out.VHDType, out.VirtualSize = strings.ToLower(d.Type().String()), d.Size()
	case ".iso":
		out.Kind = FileISO
		sig := make([]byte, 5)
		if _, err := f.ReadAt(sig, 0x8001); err != nil || !bytes.Equal(sig, []byte("CD001")) {
			return VolumeFile{}, &InputError{Attribute: "source", Value: src, Detail: fmt.Sprintf("path %s names an ISO, but the local "+
				"file has no ISO 9660 volume descriptor (CD001 at byte 32769)", volPath)}
		}
	}
	return out, nil
}

// GetVolumeFile returns the record of the file at p on volume (an error
// wrapping ErrNotFound when none).
func (e *Engine) GetVolumeFile(ctx context.Context, volume, p string) (VolumeFile, error) {
	win, vp, err := VolumeFilePath("path", p)
	if err != nil {
		return VolumeFile{}, err
	}
	var f VolumeFile
	rev, err := getJSON(ctx, e.st, volumeFileKey(volume, vp), &f)
	if errors.Is(err, ErrNotFound) {
		return VolumeFile{}, fmt.Errorf("no file %s on volume %s (put it there with a kayo_volume_file or `kayoctl volume cp`): %w", win, volume, ErrNotFound)
	}
	f.Revision = rev
	return f, err
}

// ListVolumeFiles returns the files put on volume, by path.
func (e *Engine) ListVolumeFiles(ctx context.Context, volume string) ([]VolumeFile, error) {
	fs, revs, err := listJSON[VolumeFile](ctx, e.st, volumeFilesPrefix+volume+"/")
	for i := range fs {
		fs[i].Revision = revs[i]
	}
	return fs, err
}

// writerNode is the node whose mount writes a volume's files: the first
// node (by name) the volume is mounted on.
func writerNode(v Volume) (string, error) {
	nodes := sortedKeys(v.Mounts)
	if len(nodes) == 0 {
		return "", fmt.Errorf("volume %s (%s) is mounted on no node", v.DriveLetter, v.ID)
	}
	return nodes[0], nil
}

// PutVolumeFile copies s.Source to s.Path on s.Volume and records it. A
// file already put there with the same content is kept (idempotent); with
// other content it is an error (ErrExists): delete it first. A VHD is
// checked on the way in (inspectLocal); nothing is written when it fails.
// The bytes go to a node's agent through the database
// (volume_file_put.go): this machine needs no LUN.
func (e *Engine) PutVolumeFile(ctx context.Context, s VolumeFileSpec) (VolumeFile, error) {
	win, vp, err := VolumeFilePath("path", s.Path)
	if err != nil {
		return VolumeFile{}, err
	}
	vol, err := e.GetVolume(ctx, s.Volume)
	if errors.Is(err, ErrNotFound) {
		return VolumeFile{}, &InputError{Attribute: "volume_id", Value: s.Volume, Detail: err.Error() + "; give the id of a kayo_shared_volume"}
	}
	if err != nil {
		return VolumeFile{}, err
	}
	if st, err := os.Stat(s.Source); err == nil {
		if err := e.checkPutSize(s.Source, st.Size()); err != nil {
			return VolumeFile{}, err
		}
	}
	rec, err := inspectLocal(s.Source, win)
	if err != nil {
		return VolumeFile{}, err
	}
	// The size the bytes are sent by (it may have grown since).
	if err := e.checkPutSize(s.Source, rec.SizeBytes); err != nil {
		return VolumeFile{}, err
	}
	sum, err := fileSHA256(s.Source)
	if err != nil {
		return VolumeFile{}, err
	}
	if _, err := writerNode(vol); err != nil {
		return VolumeFile{}, err
	}
	rec.Volume, rec.Path, rec.SHA256, rec.CreatedAt = vol.ID, win, sum, e.now().UTC()
	key := volumeFileKey(vol.ID, vp)
	stream := randomHex(8)
	// Intent: the record, Writing with this put's stream, before the
	// first byte.
	err = e.retry(ctx, func() error {
		var cur VolumeFile
		rev, err := getJSON(ctx, e.st, key, &cur)
		cmp := store.Absent(key)
		switch {
		case err == nil && !cur.Writing && !cur.Deleting && cur.SHA256 == sum:
			rec = cur
			rec.Revision = rev
			return errNoCommit
		case err == nil && !cur.Writing:
			return &InputError{Attribute: "path", Value: win, Detail: fmt.Sprintf("volume %s already holds %s with other content "+
				"(sha256 %s); delete it first, or put the new file under another path", vol.DriveLetter, win, cur.SHA256)}
		case err == nil:
			cmp = store.At(key, rev) // a put that crashed: redo it
		case !errors.Is(err, ErrNotFound):
			return err
		}
		w := rec
		w.Writing, w.Stream = true, stream
		_, err = e.st.Commit(ctx, []store.Cmp{cmp}, []store.Op{putJSON(key, w)})
		return err
	})
	if errors.Is(err, errNoCommit) {
		return rec, nil
	}
	if err != nil {
		return VolumeFile{}, err
	}
	// Chunks of puts that crashed or were taken over (this one's too).
	if err := e.gcPutChunks(ctx, vol.ID); err != nil {
		return VolumeFile{}, err
	}
	node, err := e.workNode(ctx, sortedKeys(vol.Mounts))
	if err != nil {
		return VolumeFile{}, err
	}
	if err := e.sendVolumeFile(ctx, vol, node, stream, s.Source, vp, rec.SizeBytes, sum); err != nil {
		return VolumeFile{}, fmt.Errorf("writing %s:\\%s: %w (the next put redoes it)", vol.DriveLetter, win, err)
	}
	var out VolumeFile
	err = e.retry(ctx, func() error {
		var cur VolumeFile
		rev, err := getJSON(ctx, e.st, key, &cur)
		if err != nil {
			return err
		}
		if !cur.Writing || cur.Stream != stream {
			return fmt.Errorf("%s:\\%s was changed by another put meanwhile: %w", vol.DriveLetter, win, ErrBusy)
		}
		out = rec
		rev, err = e.st.Commit(ctx, []store.Cmp{store.At(key, rev)}, []store.Op{putJSON(key, out),
			e.eventOp(Event{Kind: EventVolumeFilePut, Cluster: vol.Cluster, Subject: vol.DriveLetter + `:\` + win,
				Detail: map[string]string{"kind": rec.Kind, "sha256": sum, "size_bytes": fmt.Sprint(rec.SizeBytes), "node": node}})})
		out.Revision = rev
		return err
	})
	return out, err
}

// Volume file events.
const (
	EventVolumeFilePut     = "volume.file_put"
	EventVolumeFileDeleted = "volume.file_deleted"
)

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// FileUsers are the VMs using a volume file: Children have a differencing
// disk whose parent it is, DVD a DVD drive holding it.
type FileUsers struct{ Children, DVD []string }

func (u FileUsers) none() bool { return len(u.Children) == 0 && len(u.DVD) == 0 }

// fileUsers lists the VMs of vol's cluster using the file at win.
func (e *Engine) fileUsers(ctx context.Context, vol Volume, win string) (FileUsers, error) {
	vms, err := e.ListVMs(ctx, vol.Cluster)
	if err != nil {
		return FileUsers{}, err
	}
	var u FileUsers
	for _, vm := range vms {
		if vm.Volume != vol.ID {
			continue
		}
		if vm.VHD.Source == win && cloneOf(vm.VHD) == CloneDifferencing {
			u.Children = append(u.Children, vm.Name)
		}
		if vm.DVD != nil && vm.DVD.Path == win {
			u.DVD = append(u.DVD, vm.Name)
		}
	}
	return u, nil
}

// DeleteVolumeFile removes a put file and its record. It is refused
// (ErrInUse, naming them) while VMs use it: the template of differencing
// disks stays read-only and present while children exist. A missing file
// is no error.
func (e *Engine) DeleteVolumeFile(ctx context.Context, volume, p string) error {
	win, vp, err := VolumeFilePath("path", p)
	if err != nil {
		return err
	}
	vol, err := e.GetVolume(ctx, volume)
	if errors.Is(err, ErrNotFound) {
		return nil // the volume went first (force_destroy)
	}
	if err != nil {
		return err
	}
	key := volumeFileKey(vol.ID, vp)
	// Mark it Deleting first: a VM creation that read the record before
	// compares its revision and fails; one committed before is listed.
	err = e.retry(ctx, func() error {
		var cur VolumeFile
		rev, err := getJSON(ctx, e.st, key, &cur)
		if errors.Is(err, ErrNotFound) {
			return errNoCommit
		}
		if err != nil {
			return err
		}
		if cur.Deleting {
			return nil
		}
		cur.Deleting = true
		_, err = e.st.Commit(ctx, []store.Cmp{store.At(key, rev)}, []store.Op{putJSON(key, cur)})
		return err
	})
	if errors.Is(err, errNoCommit) {
		return nil
	}
	if err != nil {
		return err
	}
	users, err := e.fileUsers(ctx, vol, win)
	if err == nil && !users.none() {
		err = inUseError(vol, win, users)
	}
	if err != nil {
		// Unmark: it stays usable.
		_ = e.retry(context.WithoutCancel(ctx), func() error {
			var cur VolumeFile
			rev, gerr := getJSON(ctx, e.st, key, &cur)
			if gerr != nil || !cur.Deleting {
				return nil
			}
			cur.Deleting = false
			_, gerr = e.st.Commit(ctx, []store.Cmp{store.At(key, rev)}, []store.Op{putJSON(key, cur)})
			return gerr
		})
		return err
	}
	// A node's executor removes it (volume_file_work.go): this machine
	// may not reach the LUN.
	err = e.removeVolumeFile(ctx, vol, vp)
	if err != nil {
		return fmt.Errorf("removing %s:\\%s: %w", vol.DriveLetter, win, err)
	}
	_, err = e.st.Commit(ctx, nil, []store.Op{store.Del(key), e.eventOp(Event{Kind: EventVolumeFileDeleted, Cluster: vol.Cluster,
		Subject: vol.DriveLetter + `:\` + win})})
	if err != nil {
		return err
	}
	// The chunks of a put of it that crashed (volume_file_put.go).
	return e.gcPutChunks(ctx, vol.ID)
}

func inUseError(vol Volume, win string, u FileUsers) error {
	var why []string
	if len(u.Children) > 0 {
		why = append(why, fmt.Sprintf("it is the parent of the differencing disks of VM %s (a template is read-only and kept "+
			"while children exist: delete those VMs, or recreate them with vhd.clone = \"copy\")", strings.Join(u.Children, ", ")))
	}
	if len(u.DVD) > 0 {
		why = append(why, fmt.Sprintf("the DVD drive of VM %s holds it (change their dvd first)", strings.Join(u.DVD, ", ")))
	}
	return fmt.Errorf("%s:\\%s cannot be deleted or replaced: %s: %w", vol.DriveLetter, win, strings.Join(why, "; "), ErrInUse)
}

// InspectVolumeFile says what putting the local file source at path would
// put there (kind, size, sha256), without the database: a plan checks a
// template this way before anything is written.
func InspectVolumeFile(source, p string) (VolumeFile, error) {
	win, _, err := VolumeFilePath("path", p)
	if err != nil {
		return VolumeFile{}, err
	}
	rec, err := inspectLocal(source, win)
	if err != nil {
		return VolumeFile{}, err
	}
	if rec.SHA256, err = fileSHA256(source); err != nil {
		return VolumeFile{}, err
	}
	rec.Path = win
	return rec, nil
}
