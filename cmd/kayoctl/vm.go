package main

import (
	"bytes"
	"context"
	"fmt"
	"text/tabwriter"
)

// vmJSON is one VM of `kayoctl vm list --json`.
type vmJSON struct {
	Cluster       string `json:"cluster"`
	Name          string `json:"name"`
	Node          string `json:"node"`
	OwnerNode     string `json:"owner_node,omitempty"`
	Token         int64  `json:"token"`
	Status        string `json:"status"`
	StatusReason  string `json:"status_reason,omitempty"`
	MemoryMB      int64  `json:"memory_mb"`
	VHDPath       string `json:"vhd_path"`
	Pending       string `json:"pending,omitempty"`
	LastMigration string `json:"last_migration,omitempty"`
}

// vm: `kayoctl vm list [--cluster NAME] [--json]`.
func (c *cli) vm(args []string) error {
	if len(args) == 0 || args[0] != "list" {
		return usagef("vm: want 'vm list [--cluster NAME] [--json]'")
	}
	fs := c.newFlagSet("vm list")
	asJSON := fs.Bool("json", false, "print JSON")
	only := fs.String("cluster", "", "only VMs of this cluster")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	e, err := c.open()
	if err != nil {
		return err
	}
	defer closeEngine(e)
	// As the lab's nodes when no agent runs: report the LUNs held here,
	// so the listing (from the database only) sees a lost one.
	if err := e.ReportLabVolumes(context.Background()); err != nil {
		return err
	}
	vms, err := e.ObservedVMs(context.Background(), *only)
	if err != nil {
		return err
	}
	out := []vmJSON{}
	for _, v := range vms {
		v = e.ReportedVM(context.Background(), v) // failed when its volume's LUN is gone
		j := vmJSON{Cluster: v.Cluster, Name: v.Name, Node: v.Node, OwnerNode: v.OwnerNode, Token: v.Token, Status: v.Status,
			StatusReason: v.StatusReason, MemoryMB: v.MemoryMB, VHDPath: v.VHDPath}
		if p := v.Pending; p != nil {
			j.Pending = fmt.Sprintf("%s %s (%s)", p.Op, p.Phase, p.Holder)
		}
		if m := v.LastMigration; m != nil {
			j.LastMigration = fmt.Sprintf("%s %s→%s %dms (down %dms)", m.Type, m.From, m.To, m.DurationMs, m.DowntimeMs)
		}
		out = append(out, j)
	}
	if *asJSON {
		return writeJSON(c.stdout, out)
	}
	var b bytes.Buffer
	if len(out) == 0 {
		b.WriteString("No VMs.\n")
	} else {
		tw := tabwriter.NewWriter(&b, 0, 0, 3, ' ', 0)
		_, _ = fmt.Fprintln(tw, "CLUSTER\tVM\tNODE\tPIN\tTOKEN\tSTATUS\tMEMORY\tVHD\tLAST MIGRATION")
		for _, v := range out {
			status := v.Status
			if v.Pending != "" {
				status += " [" + v.Pending + "]"
			} else if v.StatusReason != "" {
				status += " (" + v.StatusReason + ")"
			}
			_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%d MB\t%s\t%s\n", v.Cluster, v.Name, v.Node, v.OwnerNode, v.Token,
				status, v.MemoryMB, v.VHDPath, v.LastMigration)
		}
		_ = tw.Flush()
	}
	_, err = c.stdout.Write(b.Bytes())
	return err
}
