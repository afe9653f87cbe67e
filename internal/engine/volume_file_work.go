package engine

import (
	"context"
	"encoding/json"
	"errors"
	"path"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

// A put file's removal is a node's work (nodework.go), as its put is
// (volume_file_put.go): the control plane may run where the LUN is not
// attached.

// volumeFileRemoveArgs asks a node's executor to remove Path (the
// volume's slash path) from Volume.
type volumeFileRemoveArgs struct {
	Volume string `json:"volume"`
	Path   string `json:"path"`
}

// removeVolumeFile has the executor of one of vol's nodes remove vp, its
// put's temporary file and the directories the put made.
func (e *Engine) removeVolumeFile(ctx context.Context, vol Volume, vp string) error {
	if _, err := writerNode(vol); err != nil {
		return err
	}
	node, err := e.workNode(ctx, sortedKeys(vol.Mounts))
	if err != nil {
		return err
	}
	args, err := json.Marshal(volumeFileRemoveArgs{Volume: vol.ID, Path: vp})
	if err != nil {
		return err
	}
	obj := volumeFileWorkObject(vol.ID, vp)
	res, err := e.nodeWork(ctx, node, WorkRequest{Op: workVolumeFileRemove, Object: obj, Args: args})
	if err != nil {
		return err
	}
	e.dropResult(ctx, node, obj, res) // read: the file's record goes next
	return nil
}

// volumeFileRemoveHere (run by node's executor) removes a's file. A file
// already gone is no error, so a re-run converges.
func (e *Engine) volumeFileRemoveHere(ctx context.Context, a volumeFileRemoveArgs, node string) error {
	return e.WithVolume(ctx, a.Volume, node, func(fv *kayofs.Volume) error {
		return e.serialVolume(a.Volume, func() error {
			for _, f := range []string{a.Path + tmpSuffix, a.Path} {
				if err := fv.Remove(f); err != nil && !errors.Is(err, kayofs.ErrNotExist) {
					return err
				}
			}
			// The directories a put made go with their last file (else
			// they would hold the volume's destroy), up to the first that
			// holds something else.
			for dir := path.Dir(a.Path); dir != "."; dir = path.Dir(dir) {
				if fv.Remove(dir) != nil {
					break
				}
			}
			return nil
		})
	})
}
