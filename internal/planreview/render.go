package planreview

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Formats Write accepts.
var Formats = []string{"table", "markdown", "json"}

// Write renders rep as format: table (for a terminal or a CI log),
// markdown (a pull-request comment) or json.
func (rep *Report) Write(w io.Writer, format string) error {
	switch format {
	case "table":
		return rep.writeTable(w)
	case "markdown":
		return rep.writeMarkdown(w)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return fmt.Errorf("--format: unknown format %q; allowed: %s", format, strings.Join(Formats, ", "))
}

// section is one titled table of the report.
type section struct {
	title  string
	header []string
	rows   [][]string
}

func (rep *Report) headline() string {
	c := rep.Counts
	return fmt.Sprintf("kayo plan review: %d to add, %d to change, %d to replace, %d to destroy; cluster database %s",
		c.Create, c.Update, c.Replace, c.Delete, rep.Database)
}

func (rep *Report) sections() []section {
	var out []section
	if len(rep.Migrations) > 0 {
		s := section{title: "VMs migrating", header: []string{"VM", "CLUSTER", "FROM", "TO", "TYPE", "REASON"}}
		for _, m := range rep.Migrations {
			to, typ := m.To, m.Type
			switch {
			case to == "":
				to = "decided at apply"
			case m.DecidedAtApply:
				to += " (scheduler; apply decides)"
			}
			if typ == "" {
				typ = "decided at apply"
			}
			if m.Why != "" {
				typ += " (" + m.Why + ")"
			}
			s.rows = append(s.rows, []string{m.VM, m.Cluster, dash(m.From), to, typ, m.Reason})
		}
		out = append(out, s)
	}
	if len(rep.Replacements) > 0 {
		s := section{title: "Replaced: destroyed and created again", header: []string{"ADDRESS", "NAME", "BECAUSE", "RISK"}}
		for _, r := range rep.Replacements {
			s.rows = append(s.rows, []string{r.Address, r.Name, dash(strings.Join(r.Because, "; ")), r.Risk})
		}
		out = append(out, s)
	}
	if len(rep.Volumes) > 0 {
		s := section{title: "Volumes formatted or destroyed", header: []string{"ADDRESS", "CLUSTER", "VOLUME", "ACTION", "RISK"}}
		for _, v := range rep.Volumes {
			name := v.Letter + ": " + v.LUN
			if v.Label != "" {
				name += " " + v.Label
			}
			s.rows = append(s.rows, []string{v.Address, dash(v.Cluster), name, v.Action, v.Risk})
		}
		out = append(out, s)
	}
	if len(rep.Clusters) > 0 {
		s := section{title: "Clusters: nodes and quorum", header: []string{"CLUSTER", "CHANGE", "NODES ADDED", "NODES REMOVED", "QUORUM", "FAILURES TOLERATED"}}
		for _, c := range rep.Clusters {
			q := c.QuorumAfter
			if c.QuorumBefore != c.QuorumAfter {
				q = dash(c.QuorumBefore) + " → " + dash(c.QuorumAfter)
			}
			if c.QuorumAssumed {
				q += " (assumed)"
			}
			f := fmt.Sprintf("%s → %s", figure(c.FailuresBefore), figure(c.FailuresAfter))
			if c.FailuresBefore >= 0 && c.FailuresAfter >= 0 && c.FailuresAfter < c.FailuresBefore {
				f += " (LOWER)"
			}
			s.rows = append(s.rows, []string{c.Cluster, c.Action, dash(strings.Join(c.NodesAdded, ", ")),
				dash(strings.Join(c.NodesRemoved, ", ")), q, f})
		}
		out = append(out, s)
	}
	if len(rep.Maintenance) > 0 {
		s := section{title: "Maintenance", header: []string{"HOST", "CLUSTER", "CHANGE", "VMS DRAINED"}}
		for _, m := range rep.Maintenance {
			change := "leaves maintenance"
			if m.Entering {
				change = "enters maintenance"
			}
			drains := dash(strings.Join(m.Drains, ", "))
			if !m.Entering {
				drains = "-"
			}
			s.rows = append(s.rows, []string{m.Host, dash(m.Cluster), change, drains})
		}
		out = append(out, s)
	}
	if len(rep.Destroyed) > 0 {
		s := section{title: "Destroyed", header: []string{"ADDRESS", "NAME", "RISK"}}
		for _, d := range rep.Destroyed {
			s.rows = append(s.rows, []string{d.Address, dash(d.Name), dash(d.Risk)})
		}
		out = append(out, s)
	}
	return out
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func figure(n int) string {
	if n < 0 {
		return "none"
	}
	return fmt.Sprint(n)
}

func (rep *Report) denialLines() []string {
	var out []string
	for _, d := range rep.Denied {
		out = append(out, fmt.Sprintf("DENIED %s (%d): %s", d.Category, d.Count, strings.Join(d.Items, ", ")))
	}
	return out
}

func (rep *Report) writeTable(w io.Writer) error {
	var b strings.Builder
	b.WriteString(rep.headline() + "\n")
	secs := rep.sections()
	if len(secs) == 0 {
		b.WriteString("\nNothing to review: no migration, replacement, format, destroy, node, quorum or maintenance change.\n")
	}
	for _, s := range secs {
		b.WriteString("\n" + s.title + "\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 3, ' ', 0)
		_, _ = fmt.Fprintln(tw, "  "+strings.Join(s.header, "\t"))
		for _, r := range s.rows {
			_, _ = fmt.Fprintln(tw, "  "+strings.Join(r, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(rep.Notes) > 0 {
		b.WriteString("\nNotes\n")
		for _, n := range rep.Notes {
			b.WriteString("  " + n + "\n")
		}
	}
	if lines := rep.denialLines(); len(lines) > 0 {
		b.WriteString("\n" + strings.Join(lines, "\n") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (rep *Report) writeMarkdown(w io.Writer) error {
	var b strings.Builder
	c := rep.Counts
	fmt.Fprintf(&b, "### kayo plan review\n\n**%d** to add, **%d** to change, **%d** to replace, **%d** to destroy; cluster database %s.\n",
		c.Create, c.Update, c.Replace, c.Delete, rep.Database)
	if lines := rep.denialLines(); len(lines) > 0 {
		b.WriteString("\n")
		for _, l := range lines {
			fmt.Fprintf(&b, "> :no_entry: **%s**\n", mdEscape(l))
		}
	}
	secs := rep.sections()
	if len(secs) == 0 {
		b.WriteString("\nNothing to review: no migration, replacement, format, destroy, node, quorum or maintenance change.\n")
	}
	for _, s := range secs {
		fmt.Fprintf(&b, "\n#### %s\n\n", s.title)
		b.WriteString("| " + strings.Join(s.header, " | ") + " |\n")
		b.WriteString("|" + strings.Repeat("---|", len(s.header)) + "\n")
		for _, r := range s.rows {
			cells := make([]string, len(r))
			for i, x := range r {
				cells[i] = mdEscape(x)
			}
			b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
		}
	}
	if len(rep.Notes) > 0 {
		b.WriteString("\n#### Notes\n\n")
		for _, n := range rep.Notes {
			b.WriteString("- " + mdEscape(n) + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// mdEscape keeps a cell inside its table and backslashes (UNC paths,
// Windows paths) visible.
func mdEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, "|", `\|`, "\n", " ", "*", `\*`, "_", `\_`, "<", "&lt;").Replace(s)
}
