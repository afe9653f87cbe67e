package moduledocs

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the module READMEs' generated tables (make module-docs)")

var modules = []string{"hyperv-cluster"}

// TestModuleREADMEs fails when a module's README tables differ from its
// variables and outputs: run `make module-docs` and commit.
func TestModuleREADMEs(t *testing.T) {
	for _, m := range modules {
		dir := filepath.Join("..", "..", "modules", m)
		tables, err := Tables(dir)
		if err != nil {
			t.Fatal(err)
		}
		readme := filepath.Join(dir, "README.md")
		if *update {
			if _, err := Update(readme, tables); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := os.ReadFile(readme)
		if err != nil {
			t.Fatal(err)
		}
		want, err := Splice(string(b), tables)
		if err != nil {
			t.Fatal(err)
		}
		if want != string(b) {
			t.Errorf("%s: the inputs/outputs tables are stale: run `make module-docs` and commit", readme)
		}
	}
}

func TestTables(t *testing.T) {
	dir := t.TempDir()
	src := `variable "b" {
  description = "Second | piped."
  type = object({
    x = string
  })
  default = { x = "y" }
}
variable "a" {
  description = "First."
  type        = number
}
output "o" {
  description = "An output."
  value       = 1
}
`
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Tables(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| <a name=\"input_a\"></a> [a](#input_a) | First. | `number` | n/a | yes |\n| <a name=\"input_b\"></a>",
		"| Second \\| piped. | `object({x = string})` | `{x = \"y\"}` | no |",
		"| <a name=\"output_o\"></a> [o](#output_o) | An output. |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("tables lack %q:\n%s", want, got)
		}
	}
	if _, err := Splice("no markers", got); err == nil {
		t.Error("Splice accepted a document without markers")
	}
}
