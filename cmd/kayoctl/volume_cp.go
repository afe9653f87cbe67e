package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
)

const volumeCpUsage = `volume cp LOCAL (UUID | CLUSTER/LETTER):PATH, or volume rm (UUID | CLUSTER/LETTER):PATH; e.g. ` +
	`volume cp base.vhd HVCLUSTER/O:templates\base.vhd`

// splitVolumePath splits VOLUME:PATH at its last colon (a volume UUID has
// none; CLUSTER/LETTER none either).
func splitVolumePath(arg string) (vol, p string, err error) {
	i := strings.LastIndex(arg, ":")
	if i <= 0 || i == len(arg)-1 {
		return "", "", usagef("%q is not VOLUME:PATH; want %s", arg, volumeCpUsage)
	}
	return arg[:i], arg[i+1:], nil
}

// volumeCp: `kayoctl volume cp LOCAL VOLUME:PATH` puts a template or ISO on
// a volume as a kayo_volume_file does (a *.vhd checked as a valid VHD on
// the way in); the same content again is a no-op.
func (c *cli) volumeCp(args []string) error {
	fs := c.newFlagSet("volume cp")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef(volumeCpUsage)
	}
	return c.onVolumePath(fs.Arg(1), func(ctx context.Context, e *engine.Engine, v engine.Volume, p string) error {
		f, err := e.PutVolumeFile(ctx, engine.VolumeFileSpec{Volume: v.ID, Path: p, Source: fs.Arg(0)})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.stdout, "%s:\\%s: %s, %d bytes, sha256 %s\n", v.DriveLetter, f.Path, f.Kind, f.SizeBytes, f.SHA256)
		return err
	})
}

// onVolumePath runs fn on the volume and path that arg (VOLUME:PATH) names.
func (c *cli) onVolumePath(arg string, fn func(context.Context, *engine.Engine, engine.Volume, string) error) error {
	volArg, p, err := splitVolumePath(arg)
	if err != nil {
		return err
	}
	e, err := c.open()
	if err != nil {
		return err
	}
	defer closeEngine(e)
	ctx, cancel := c.signalContext()
	defer cancel()
	v, err := e.LookupVolume(ctx, volArg)
	if err != nil {
		return err
	}
	return fn(ctx, e, v, p)
}

// volumeRm: `kayoctl volume rm VOLUME:PATH`, refused while VMs use the
// file (a template's differencing children, a DVD drive), naming them.
func (c *cli) volumeRm(args []string) error {
	fs := c.newFlagSet("volume rm")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef(volumeCpUsage)
	}
	return c.onVolumePath(fs.Arg(0), func(ctx context.Context, e *engine.Engine, v engine.Volume, p string) error {
		return e.DeleteVolumeFile(ctx, v.ID, p)
	})
}
