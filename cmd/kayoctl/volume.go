package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"text/tabwriter"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

// volumeCheckJSON is `kayoctl volume check --json`.
type volumeCheckJSON struct {
	Volume   string        `json:"volume"`
	Device   string        `json:"device"`
	Label    string        `json:"label"`
	Size     int64         `json:"size_bytes"`
	Slots    []slotJSON    `json:"slots"`
	Problems []problemJSON `json:"problems"`
}

type slotJSON struct {
	Slot  int    `json:"slot"`
	State string `json:"state"`
	Node  string `json:"node,omitempty"`
	Dirty bool   `json:"dirty_journal"`
}

type problemJSON struct {
	Area  string `json:"area"`
	Block uint64 `json:"block,omitempty"`
	Msg   string `json:"message"`
}

var errProblems = errors.New("the volume has problems")

// volume: `kayoctl volume check (UUID | CLUSTER/LETTER | --device PATH) [--json]`.
// It verifies every Kayo FS invariant (read-only) and exits 1 when any is
// violated.
func (c *cli) volume(args []string) error {
	const want = "volume: want 'volume check (UUID | CLUSTER/LETTER | --device PATH) [--json]' or 'volume mount (UUID | CLUSTER/LETTER) --node NAME DIR' or '" + volumeCpUsage + "'"
	if len(args) > 0 && args[0] == "mount" {
		return c.volumeMount(args[1:]) // volume_mount.go
	}
	if len(args) > 0 && args[0] == "cp" {
		return c.volumeCp(args[1:]) // volume_cp.go
	}
	if len(args) > 0 && args[0] == "rm" {
		return c.volumeRm(args[1:]) // volume_cp.go
	}
	if len(args) == 0 || args[0] != "check" {
		return usagef(want)
	}
	fs := c.newFlagSet("volume check")
	asJSON := fs.Bool("json", false, "print JSON")
	device := fs.String("device", "", "check this image or block device directly (no cluster database)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	out := volumeCheckJSON{Problems: []problemJSON{}}
	switch {
	case *device != "" && fs.NArg() == 0:
		abs, err := filepath.Abs(*device)
		if err != nil {
			return err
		}
		out.Device = abs
	case *device == "" && fs.NArg() == 1:
		e, err := c.open()
		if err != nil {
			return err
		}
		v, err := e.LookupVolume(context.Background(), fs.Arg(0))
		closeEngine(e)
		if err != nil {
			return err
		}
		out.Device = v.Device
	default:
		return usagef(want)
	}
	fd, err := kayofs.OpenDevice(out.Device)
	if err != nil {
		return err
	}
	defer fd.Close()
	sb, err := kayofs.ReadSuperblock(fd)
	if err != nil {
		return fmt.Errorf("%s: %w", out.Device, err)
	}
	out.Volume, out.Label, out.Size = sb.UUIDString(), sb.Label, sb.Size()
	slots, err := kayofs.Slots(fd)
	if err != nil {
		return err
	}
	for _, s := range slots {
		out.Slots = append(out.Slots, slotJSON{Slot: s.Slot, State: s.State, Node: s.Node, Dirty: s.Dirty})
	}
	probs, err := kayofs.Check(fd)
	if err != nil {
		return err
	}
	for _, p := range probs {
		out.Problems = append(out.Problems, problemJSON{Area: p.Area, Block: p.Block, Msg: p.Msg})
	}
	if *asJSON {
		if err := writeJSON(c.stdout, out); err != nil {
			return err
		}
	} else {
		var b bytes.Buffer
		fmt.Fprintf(&b, "Volume %s %q on %s (%d bytes, %d-byte blocks, %d groups)\n\n", out.Volume, out.Label, out.Device,
			out.Size, sb.BlockSize, sb.AGCount)
		tw := tabwriter.NewWriter(&b, 0, 0, 3, ' ', 0)
		_, _ = fmt.Fprintln(tw, "  SLOT\tSTATE\tNODE\tJOURNAL")
		for _, s := range out.Slots {
			if s.State == "free" && !s.Dirty {
				continue
			}
			j := "clean"
			if s.Dirty {
				j = "dirty (replayed by the next mount)"
			}
			_, _ = fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\n", s.Slot, s.State, s.Node, j)
		}
		_ = tw.Flush()
		if len(out.Problems) == 0 {
			b.WriteString("\nCheck: no problems\n")
		} else {
			fmt.Fprintf(&b, "\nCheck: %d problems\n", len(out.Problems))
			for _, p := range probs {
				fmt.Fprintf(&b, "  %s\n", p)
			}
		}
		if _, err := c.stdout.Write(b.Bytes()); err != nil {
			return err
		}
	}
	if len(out.Problems) > 0 {
		return fmt.Errorf("%s: %d problems: %w", out.Device, len(out.Problems), errProblems)
	}
	return nil
}
