package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/kayofuse"
)

const volumeMountUsage = "volume mount: want 'volume mount (UUID | CLUSTER/LETTER) --node NAME DIR'"

// volumeMount: `kayoctl volume mount VOLUME --node NAME DIR` mounts the
// volume at DIR through FUSE as node NAME (with that node's slot, the way
// the engine mounts it for the node), until SIGINT or SIGTERM, or until
// someone unmounts DIR.
func (c *cli) volumeMount(args []string) error {
	fs := c.newFlagSet("volume mount")
	node := fs.String("node", "", "the cluster node whose slot the mount uses")
	debug := fs.Bool("debug", false, "log every FUSE request")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 || *node == "" {
		return usagef(volumeMountUsage)
	}
	dir, err := filepath.Abs(fs.Arg(1))
	if err != nil {
		return err
	}
	if err := kayofuse.Available(); err != nil {
		return err
	}
	if err := kayofuse.CheckMountpoint(dir); err != nil {
		return err
	}
	e, err := c.open()
	if err != nil {
		return err
	}
	defer closeEngine(e)
	ctx, cancel := c.signalContext()
	defer cancel()
	v, err := e.LookupVolume(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	cl, err := e.GetCluster(ctx, v.Cluster)
	if err != nil {
		return err
	}
	if !slices.Contains(cl.Nodes, *node) {
		return fmt.Errorf("--node: %q is not a node of cluster %s, which volume %s: (%s) belongs to; its nodes: %s",
			*node, cl.Name, v.DriveLetter, v.ID, strings.Join(cl.Nodes, ", "))
	}
	logf := func(format string, a ...any) {
		_, _ = fmt.Fprintf(c.stderr, "%s kayoctl: %s: %s\n", time.Now().Format("15:04:05.000"), dir, fmt.Sprintf(format, a...))
	}
	err = e.WithVolume(ctx, v.ID, *node, func(fv *kayofs.Volume) error {
		srv, err := kayofuse.Mount(fv, dir, kayofuse.Options{Logf: logf, Debug: *debug})
		if err != nil {
			return err
		}
		_, _ = fmt.Fprintf(c.stdout, "Mounted volume %s: (%s) %q at %s as %s (slot %d). Stop with Ctrl-C, SIGTERM or umount %s.\n",
			v.DriveLetter, v.ID, fv.Label(), dir, *node, fv.Slot(), dir)
		select {
		case <-ctx.Done():
		case <-srv.Done():
			logf("unmounted from outside")
		}
		// A busy mount point is detached lazily; its open files are served
		// until they close, or until a second signal.
		uctx, ucancel := c.signalContext()
		defer ucancel()
		go func() {
			select {
			case <-time.After(time.Second):
				logf("busy: waiting for the files open there to close (signal again to stop at once)")
			case <-srv.Done():
			case <-uctx.Done():
			}
		}()
		return srv.Unmount(uctx)
	})
	// The node keeps its slot (detached, as after any engine operation);
	// this process's hold and heartbeats end now.
	e.ReleaseMounts()
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintf(c.stdout, "Unmounted %s; %s's slot is detached (it stays the node's).\n", dir, *node)
	return nil
}
