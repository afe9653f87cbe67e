package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/validate"
)

// cluster validate NAME: the validation report now, from the registered
// hosts and what their node agents report and probe (nothing changes).
// Exit 1 when a test fails.
func (c *cli) cluster(args []string) error {
	if len(args) == 0 || args[0] != "validate" {
		return usagef("cluster: want `cluster validate NAME [--json]`")
	}
	fs := c.newFlagSet("cluster validate")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("cluster validate: want exactly one cluster name, got %d arguments", fs.NArg())
	}
	e, err := c.open()
	if err != nil {
		return err
	}
	defer closeEngine(e)
	ctx := context.Background()
	cl, err := e.GetCluster(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	check, err := e.ValidateCluster(ctx, cl.ClusterSpec, false)
	if err != nil {
		return err
	}
	rep := check.Report
	at := check.At.Format(time.RFC3339Nano)
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Cluster string          `json:"cluster"`
			At      string          `json:"validated_at"`
			Passed  bool            `json:"passed"`
			Tests   []validate.Test `json:"tests"`
		}{fs.Arg(0), at, rep.Passed(), rep.Tests}); err != nil {
			return err
		}
	} else {
		_, _ = fmt.Fprintf(c.stdout, "Validation of cluster %s at %s\n", fs.Arg(0), at)
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		_, _ = fmt.Fprintln(tw, "CATEGORY\tTEST\tRESULT\tSOURCE\tMESSAGE")
		for _, t := range rep.Tests {
			_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Category, t.Name, t.Result, sourceText(t), t.Message)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return rep.Err()
}

// sourceText is a test's source, and for a probed one whose agents'
// data it used and when ("probed by Y-21 17:02:03, Y-22 17:02:04").
func sourceText(t validate.Test) string {
	if len(t.Agents) == 0 {
		return t.Source
	}
	by := make([]string, len(t.Agents))
	for i, a := range t.Agents {
		by[i] = a.Node + " " + a.At.UTC().Format("15:04:05")
	}
	return t.Source + " by " + strings.Join(by, ", ")
}
