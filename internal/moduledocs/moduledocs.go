// Package moduledocs writes the inputs and outputs tables of a Terraform
// module's README from its variable and output blocks (what terraform-docs
// does; it does not build from the Go module proxy here). The README keeps
// the tables between <!-- BEGIN_TF_DOCS --> and <!-- END_TF_DOCS -->;
// everything else in it is hand-written.
package moduledocs

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Markers around the generated part of a README.
const (
	Begin = "<!-- BEGIN_TF_DOCS -->"
	End   = "<!-- END_TF_DOCS -->"
)

type variable struct {
	name, description, typ, def string
	required                    bool
}

type output struct{ name, description string }

// Tables renders the Inputs and Outputs tables of the module in dir.
func Tables(dir string) (string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	var vars []variable
	var outs []output
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		file, diags := hclsyntax.ParseConfig(src, f, hcl.InitialPos)
		if diags.HasErrors() {
			return "", diags
		}
		for _, b := range file.Body.(*hclsyntax.Body).Blocks {
			if len(b.Labels) != 1 {
				continue
			}
			switch b.Type {
			case "variable":
				v := variable{name: b.Labels[0], description: literal(b.Body, "description"), typ: "any", required: true}
				if a, ok := b.Body.Attributes["type"]; ok {
					v.typ = oneLine(string(a.Expr.Range().SliceBytes(src)))
				}
				if a, ok := b.Body.Attributes["default"]; ok {
					v.def, v.required = oneLine(string(a.Expr.Range().SliceBytes(src))), false
				}
				vars = append(vars, v)
			case "output":
				outs = append(outs, output{name: b.Labels[0], description: literal(b.Body, "description")})
			}
		}
	}
	sort.Slice(vars, func(i, j int) bool { return vars[i].name < vars[j].name })
	sort.Slice(outs, func(i, j int) bool { return outs[i].name < outs[j].name })
	var b strings.Builder
	b.WriteString("## Inputs\n\n| Name | Description | Type | Default | Required |\n|------|-------------|------|---------|:--------:|\n")
	for _, v := range vars {
		def, req := "n/a", "yes"
		if !v.required {
			def, req = code(v.def), "no"
		}
		fmt.Fprintf(&b, "| <a name=\"input_%s\"></a> [%s](#input_%s) | %s | %s | %s | %s |\n",
			v.name, v.name, v.name, cell(v.description), code(v.typ), def, req)
	}
	b.WriteString("\n## Outputs\n\n| Name | Description |\n|------|-------------|\n")
	for _, o := range outs {
		fmt.Fprintf(&b, "| <a name=\"output_%s\"></a> [%s](#output_%s) | %s |\n", o.name, o.name, o.name, cell(o.description))
	}
	return b.String(), nil
}

// literal is a block's string attribute, "" when absent or not a literal.
func literal(body *hclsyntax.Body, name string) string {
	a, ok := body.Attributes[name]
	if !ok {
		return ""
	}
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() || !v.IsKnown() || v.IsNull() {
		return ""
	}
	return v.AsString()
}

var spaces = regexp.MustCompile(`\s+`)

// oneLine collapses an expression's source onto one line, attributes of
// an object separated by commas.
func oneLine(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	s = strings.Join(parts, ", ")
	s = spaces.ReplaceAllString(s, " ")
	for _, r := range [][2]string{{",,", ","}, {"{, ", "{"}, {"(, ", "("}, {"[, ", "["}, {", }", "}"}, {", )", ")"}, {", ]", "]"}, {"{ ", "{"}, {" }", "}"}} {
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	return s
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func code(s string) string { return "`" + strings.ReplaceAll(s, "|", `\|`) + "`" }

// Update rewrites the generated part of readme (between Begin and End)
// with tables; it reports whether the file changed.
func Update(readme, tables string) (bool, error) {
	b, err := os.ReadFile(readme)
	if err != nil {
		return false, err
	}
	next, err := Splice(string(b), tables)
	if err != nil {
		return false, fmt.Errorf("%s: %w", readme, err)
	}
	if next == string(b) {
		return false, nil
	}
	return true, os.WriteFile(readme, []byte(next), 0o644)
}

// Splice puts tables between the markers of doc.
func Splice(doc, tables string) (string, error) {
	i, j := strings.Index(doc, Begin), strings.Index(doc, End)
	if i < 0 || j < i {
		return "", fmt.Errorf("no %s ... %s section", Begin, End)
	}
	return doc[:i+len(Begin)] + "\n" + tables + doc[j:], nil
}
