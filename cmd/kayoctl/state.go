package main

import (
	"context"
	"flag"
	"strings"

	"github.com/kayo-labs/terraform-provider-kayo/internal/orphans"
)

// fileList is a flag that may be given several times.
type fileList []string

func (f *fileList) String() string     { return strings.Join(*f, ",") }
func (f *fileList) Set(v string) error { *f = append(*f, v); return nil }

// orphanJSON is one object of `kayoctl state orphans --json`.
type orphanJSON struct {
	Type      string `json:"type"`
	ID        string `json:"id"`
	About     string `json:"about"`
	To        string `json:"to"`
	From      string `json:"address_from"`
	Unsettled string `json:"unsettled,omitempty"`
}

// state: `kayoctl state orphans (--state FILE | --state-json FILE)...`.
func (c *cli) state(args []string) error {
	if len(args) == 0 || args[0] != "orphans" {
		return usagef("state: want 'state orphans --state terraform.tfstate' or 'state orphans --state-json FILE'")
	}
	fs := c.newFlagSet("state orphans")
	var stateFiles, showFiles fileList
	fs.Var(&stateFiles, "state", "a state file (terraform.tfstate); repeatable")
	fs.Var(&showFiles, "state-json", "`terraform show -json` output, of the state or of a saved plan; repeatable")
	only := fs.String("cluster", "", "only objects of this cluster")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if len(stateFiles)+len(showFiles) == 0 {
		return usagef("state orphans: give the state(s) to compare with: --state terraform.tfstate or --state-json FILE (terraform show -json)")
	}
	// The files first: bad input fails before the database is opened.
	var states []*orphans.State
	var files []string
	for _, f := range stateFiles {
		s, err := orphans.ReadStateFile(f)
		if err != nil {
			return err
		}
		states, files = append(states, s), append(files, f)
	}
	for _, f := range showFiles {
		s, err := orphans.ReadShowJSON(f)
		if err != nil {
			return err
		}
		states, files = append(states, s), append(files, f)
	}
	e, err := c.open()
	if err != nil {
		return err
	}
	defer closeEngine(e)
	objects, err := orphans.List(context.Background(), e, *only)
	if err != nil {
		return err
	}
	found := orphans.Find(objects, states)
	if *asJSON {
		out := []orphanJSON{}
		for _, o := range found {
			out = append(out, orphanJSON{Type: o.Type, ID: o.ID, About: o.About, To: o.To, From: o.From, Unsettled: o.Unsettled})
		}
		return writeJSON(c.stdout, out)
	}
	var b strings.Builder
	orphans.WriteHCL(&b, found, files)
	_, err = c.stdout.Write([]byte(b.String()))
	return err
}

var _ flag.Value = (*fileList)(nil)
