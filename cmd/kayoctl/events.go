package main

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// eventJSON is one event of `kayoctl events --json`.
type eventJSON struct {
	// Revision is the store revision of the commit that wrote the event:
	// a total order across every process sharing the data dir.
	Revision int64             `json:"revision"`
	Time     time.Time         `json:"time"`
	Kind     string            `json:"kind"`
	Cluster  string            `json:"cluster,omitempty"`
	Subject  string            `json:"subject"`
	Detail   map[string]string `json:"detail,omitempty"`
}

func (c *cli) events(args []string) error {
	fs := c.newFlagSet("events")
	asJSON := fs.Bool("json", false, "print JSON (an array, oldest first)")
	only := fs.String("cluster", "", "only events of this cluster")
	kind := fs.String("kind", "", "only events whose kind starts with this (host., quorum., agent., cluster.)")
	if err := parse(fs, args); err != nil {
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
	evs, err := e.Events(context.Background())
	if err != nil {
		return err
	}
	out := []eventJSON{}
	for _, ev := range evs {
		if *only != "" && ev.Cluster != *only {
			continue
		}
		if *kind != "" && !strings.HasPrefix(ev.Kind, *kind) {
			continue
		}
		out = append(out, eventJSON{Revision: ev.Revision, Time: ev.Time, Kind: ev.Kind, Cluster: ev.Cluster,
			Subject: ev.Subject, Detail: ev.Detail})
	}
	if *asJSON {
		return writeJSON(c.stdout, out)
	}
	var b bytes.Buffer
	if len(out) == 0 {
		b.WriteString("No events.\n")
		return c.emit(&b)
	}
	rows := [][]string{{"REV", "TIME", "KIND", "CLUSTER", "SUBJECT", "DETAIL"}}
	for _, ev := range out {
		cluster := ev.Cluster
		if cluster == "" {
			cluster = "-"
		}
		rows = append(rows, []string{fmt.Sprint(ev.Revision), ev.Time.Local().Format("2006-01-02 15:04:05.000"),
			ev.Kind, cluster, ev.Subject, details(ev.Detail)})
	}
	writeTable(&b, "", rows, map[int]bool{0: true}, nil)
	return c.emit(&b)
}

func details(d map[string]string) string {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+d[k])
	}
	return strings.Join(parts, " ")
}
