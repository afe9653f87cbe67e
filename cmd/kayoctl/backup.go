package main

import (
	"bytes"
	"fmt"
	"path/filepath"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
)

// backup: `kayoctl backup FILE`: a consistent copy of the cluster
// database, taken while it is in use, checked before it is kept.
func (c *cli) backup(args []string) error {
	fs := c.newFlagSet("backup")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("backup: want 'backup FILE', got %d arguments", fs.NArg())
	}
	file, err := filepath.Abs(fs.Arg(0))
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
	info, err := e.Backup(ctx, file)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	etcd, _ := c.etcdOptions()
	if etcd != nil {
		fmt.Fprintf(&b, "etcd snapshot written to %s (%d bytes, etcd revision %d).\n"+
			"It holds the whole etcd keyspace; restore it with `etcdutl snapshot restore %s` on every member (kayoctl restore is for the embedded database).\n",
			info.Path, info.Size, info.Revision, info.Path)
	} else {
		fmt.Fprintf(&b, "Backup written to %s (%d bytes, revision %d, %d records), checked.\nRestore it with `kayoctl --data-dir %s restore %s`.\n",
			info.Path, info.Size, info.Revision, info.Keys, e.DataDir(), info.Path)
	}
	return c.emit(&b)
}

// restore: `kayoctl restore FILE [--force]`: the backup FILE, once
// checked, replaces the embedded database of the data dir.
func (c *cli) restore(args []string) error {
	fs := c.newFlagSet("restore")
	force := fs.Bool("force", false, "replace an intact database (it is kept next to it)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("restore: want 'restore FILE [--force]', got %d arguments", fs.NArg())
	}
	etcd, err := c.etcdOptions()
	if err != nil {
		return err
	}
	if etcd != nil {
		return fmt.Errorf("restore: the cluster database is in etcd (%s): restore an etcd snapshot with "+
			"`etcdutl snapshot restore FILE --data-dir DIR` on every member and restart etcd; kayoctl restore replaces the embedded database only",
			fs.Arg(0))
	}
	ctx, cancel := c.signalContext()
	defer cancel()
	res, err := engine.RestoreDatabase(ctx, c.dir(), fs.Arg(0), *force, c.lockTimeout)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "Restored %s from %s (revision %d, %d records).\n", res.Path, fs.Arg(0), res.Revision, res.Keys)
	if res.Previous != "" {
		fmt.Fprintf(&b, "The database it replaced is kept as %s.\n", res.Previous)
	}
	b.WriteString("Run `terraform plan` to see how the infrastructure differs from the restored state.\n")
	return c.emit(&b)
}
