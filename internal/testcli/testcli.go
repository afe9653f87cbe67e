// Package testcli drives the real Terraform and OpenTofu CLIs against
// locally built providers. It is test support only: the end-to-end tests in
// internal/e2e and the lifecycle benchmark in bench/ use it.
//
// The pieces:
//   - Build / ProviderBinary compile a provider once per test process.
//   - NewMirror lays out a filesystem mirror (unpacked layout) holding one or
//     more providers and writes a CLI config file that installs them from it,
//     so `init` works with no network and writes a lock file.
//   - CLIs finds the CLIs to run; Workdir runs one of them in a directory
//     with a clean environment.
package testcli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// KayoSource is the provider source address of the kayo provider; the
// explicit hostname makes Terraform and OpenTofu resolve it alike.
const KayoSource = "local/kayo/kayo"

// KayoVersion is the version the test mirror offers the kayo provider at.
const KayoVersion = "0.1.0"

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// RepoRoot returns the directory holding the module's go.mod.
func RepoRoot() (string, error) {
	rootOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err == nil {
			if gomod := strings.TrimSpace(string(out)); gomod != "" && gomod != os.DevNull {
				rootDir = filepath.Dir(gomod)
				return
			}
		}
		// Fall back to this source file's location: internal/testcli/.
		_, file, _, ok := runtime.Caller(0)
		if !ok {
			rootErr = errors.New("testcli: cannot locate the repository root")
			return
		}
		rootDir = filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	})
	return rootDir, rootErr
}

var (
	buildMu    sync.Mutex
	buildCache = map[string]string{}
	buildDir   string
)

// Build compiles the main package pkg (a path relative to the repository
// root, such as "." or "./bench/noop") once per process and returns the
// binary's path. Later calls with the same pkg return the same binary.
func Build(tb testing.TB, pkg string) string {
	tb.Helper()
	bin, err := build(pkg)
	if err != nil {
		tb.Fatal(err)
	}
	return bin
}

// ProviderBinary builds the kayo provider (the repository root's main
// package) once per process and returns its path.
func ProviderBinary(tb testing.TB) string {
	tb.Helper()
	// Reading main.go tells the go test cache that results depend on it.
	if root, err := RepoRoot(); err == nil {
		_, _ = os.ReadFile(filepath.Join(root, "main.go"))
	}
	return Build(tb, ".")
}

// HaveProviderSource reports whether the kayo provider's main package exists
// yet (the repository root holds main.go).
func HaveProviderSource() bool {
	root, err := RepoRoot()
	if err != nil {
		return false
	}
	_, err = os.Stat(filepath.Join(root, "main.go"))
	return err == nil
}

func build(pkg string) (string, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	if bin, ok := buildCache[pkg]; ok {
		return bin, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "testcli-bin-")
		if err != nil {
			return "", err
		}
		buildDir = d
	}
	name := strings.Trim(strings.NewReplacer("/", "_", ".", "_").Replace(pkg), "_")
	if name == "" {
		name = "root"
	}
	bin := filepath.Join(buildDir, "provider-"+name)
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("testcli: go build %s: %v\n%s", pkg, err, out.String())
	}
	buildCache[pkg] = bin
	return bin, nil
}

// Cleanup removes the binaries Build made. Call it from TestMain after
// m.Run(); without it they stay in the system temp dir.
func Cleanup() {
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir != "" {
		os.RemoveAll(buildDir)
		buildDir = ""
		buildCache = map[string]string{}
	}
}

// Provider is one provider binary to put in a mirror.
type Provider struct {
	// Source is the full source address, hostname/namespace/type.
	Source string
	// Version such as "0.1.0".
	Version string
	// Binary is the path of the built provider executable.
	Binary string
}

// Mirror is a filesystem mirror plus the CLI config file that uses it.
type Mirror struct {
	// Dir is the mirror's root.
	Dir string
	// ConfigFile is the CLI config (TF_CLI_CONFIG_FILE) installing every
	// provider of the mirror from it, and nothing from anywhere else.
	ConfigFile string
}

// WriteMirror lays out providers under dir in the unpacked layout
// (dir/HOST/NS/TYPE/VERSION/OS_ARCH/terraform-provider-TYPE_vVERSION) and
// writes dir/../cli.tfrc (or configFile if not empty) that installs them
// from there.
func WriteMirror(dir, configFile string, providers ...Provider) (*Mirror, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if configFile == "" {
		configFile = filepath.Join(filepath.Dir(dir), "cli.tfrc")
	}
	var include []string
	for _, p := range providers {
		parts := strings.Split(p.Source, "/")
		if len(parts) != 3 {
			return nil, fmt.Errorf("testcli: provider source %q: want hostname/namespace/type", p.Source)
		}
		platform := runtime.GOOS + "_" + runtime.GOARCH
		pdir := filepath.Join(dir, parts[0], parts[1], parts[2], p.Version, platform)
		if err := os.MkdirAll(pdir, 0o755); err != nil {
			return nil, err
		}
		dst := filepath.Join(pdir, "terraform-provider-"+parts[2]+"_v"+p.Version)
		if err := copyFile(p.Binary, dst); err != nil {
			return nil, err
		}
		include = append(include, fmt.Sprintf("%q", p.Source))
	}
	cfg := fmt.Sprintf(`# Written by internal/testcli: install these providers from a local
# filesystem mirror only; never from a registry.
provider_installation {
  filesystem_mirror {
    path    = %q
    include = [%s]
  }
}
`, dir, strings.Join(include, ", "))
	if err := os.MkdirAll(filepath.Dir(configFile), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(configFile, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	return &Mirror{Dir: dir, ConfigFile: configFile}, nil
}

// NewMirror is WriteMirror into a fresh temporary directory of tb.
func NewMirror(tb testing.TB, providers ...Provider) *Mirror {
	tb.Helper()
	base := tb.TempDir()
	m, err := WriteMirror(filepath.Join(base, "mirror"), filepath.Join(base, "cli.tfrc"), providers...)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// KayoProvider builds the kayo provider and describes it for a mirror.
func KayoProvider(tb testing.TB) Provider {
	tb.Helper()
	return Provider{Source: KayoSource, Version: KayoVersion, Binary: ProviderBinary(tb)}
}

func copyFile(src, dst string) error {
	// A hard link when possible: the binaries are tens of megabytes.
	os.Remove(dst)
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// CLI is one Terraform-compatible command-line tool.
type CLI struct {
	// Name is "terraform" or "tofu".
	Name string
	// Path is the executable.
	Path string
}

func (c CLI) String() string { return c.Name }

// CLIs returns the CLIs the tests run: the one named by
// TF_ACC_TERRAFORM_PATH when that is set, otherwise both bin/terraform and
// bin/tofu of the repository (built by `make tools`). A missing CLI skips the
// test, except when CI=true, where it fails.
func CLIs(tb testing.TB) []CLI {
	tb.Helper()
	if p := os.Getenv("TF_ACC_TERRAFORM_PATH"); p != "" {
		c, err := DetectCLI(resolve(p))
		if err != nil {
			missing(tb, err.Error())
		}
		return []CLI{c}
	}
	root, err := RepoRoot()
	if err != nil {
		tb.Fatal(err)
	}
	var out []CLI
	var absent []string
	for _, name := range []string{"terraform", "tofu"} {
		p := filepath.Join(root, "bin", name)
		if _, err := os.Stat(p); err != nil {
			absent = append(absent, p)
			continue
		}
		out = append(out, CLI{Name: name, Path: p})
	}
	if len(absent) > 0 {
		missing(tb, "CLI not built: "+strings.Join(absent, ", ")+" (run `make tools`)")
	}
	return out
}

// resolve makes a relative CLI path absolute: relative to the working
// directory when it exists there, else to the repository root (tests run in
// their package's directory, a Makefile at the root).
func resolve(p string) string {
	if filepath.IsAbs(p) || !strings.ContainsRune(p, filepath.Separator) {
		return p
	}
	if abs, err := filepath.Abs(p); err == nil {
		if _, err := os.Stat(abs); err == nil {
			return abs
		}
	}
	if root, err := RepoRoot(); err == nil {
		return filepath.Join(root, p)
	}
	return p
}

// NamedCLI returns bin/<name> of the repository ("terraform" or "tofu"),
// skipping (failing when CI=true) if it is absent.
func NamedCLI(tb testing.TB, name string) CLI {
	tb.Helper()
	root, err := RepoRoot()
	if err != nil {
		tb.Fatal(err)
	}
	p := filepath.Join(root, "bin", name)
	if _, err := os.Stat(p); err != nil {
		missing(tb, "CLI not built: "+p+" (run `make tools`)")
	}
	return CLI{Name: name, Path: p}
}

// DetectCLI names the CLI at path by asking it its version.
func DetectCLI(path string) (CLI, error) {
	out, err := exec.Command(path, "version").CombinedOutput()
	if err != nil {
		return CLI{}, fmt.Errorf("testcli: %s version: %v: %s", path, err, out)
	}
	name := "terraform"
	if strings.Contains(string(out), "OpenTofu") {
		name = "tofu"
	}
	return CLI{Name: name, Path: path}, nil
}

func missing(tb testing.TB, msg string) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
}

// Result is what one CLI run produced.
type Result struct {
	Args     []string
	Stdout   string
	Stderr   string
	ExitCode int
	Duration time.Duration
	// Err is nil when the command exited 0.
	Err error
}

// Workdir is a directory where a CLI runs with a clean environment.
type Workdir struct {
	CLI CLI
	Dir string
	// ConfigFile is passed as TF_CLI_CONFIG_FILE.
	ConfigFile string
	// Env holds extra KEY=VALUE pairs (KAYO_DATA_DIR, TF_LOG, ...).
	Env []string
}

// NewWorkdir returns a Workdir for cli in dir using m's CLI config.
func NewWorkdir(cli CLI, dir string, m *Mirror) *Workdir {
	return &Workdir{CLI: cli, Dir: dir, ConfigFile: m.ConfigFile}
}

// WriteFile writes a file (such as main.tf) into the work dir.
func (w *Workdir) WriteFile(name, content string) error {
	return os.WriteFile(filepath.Join(w.Dir, name), []byte(content), 0o644)
}

// Environ is the environment the CLI runs with: a few variables of this
// process (PATH, HOME, TMPDIR, proxies), none of the TF_* ones, plus the
// CLI config, CHECKPOINT_DISABLE=1, TF_IN_AUTOMATION=1, and w.Env.
func (w *Workdir) Environ() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "USER", "LANG", "SystemRoot",
		"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	env = append(env,
		"CHECKPOINT_DISABLE=1",
		"TF_IN_AUTOMATION=1",
		"TF_INPUT=0",
		// The plugin cache stays off: TF_PLUGIN_CACHE_DIR is not passed and
		// the CLI config names none.
	)
	if w.ConfigFile != "" {
		env = append(env, "TF_CLI_CONFIG_FILE="+w.ConfigFile)
	}
	return append(env, w.Env...)
}

// Run runs the CLI with args in the work dir.
func (w *Workdir) Run(ctx context.Context, args ...string) Result {
	cmd := exec.CommandContext(ctx, w.CLI.Path, args...)
	cmd.Dir = w.Dir
	cmd.Env = w.Environ()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := Result{Args: args, Stdout: stdout.String(), Stderr: stderr.String(), Duration: time.Since(start)}
	if err != nil {
		r.ExitCode = -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			r.ExitCode = ee.ExitCode()
		}
		r.Err = fmt.Errorf("%s %s (in %s): %w\n--- stderr ---\n%s--- stdout ---\n%s",
			w.CLI.Name, strings.Join(args, " "), w.Dir, err, r.Stderr, tail(r.Stdout, 4000))
	}
	return r
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "...\n" + s[len(s)-n:]
}

// Init runs `init`.
func (w *Workdir) Init(ctx context.Context) Result {
	return w.Run(ctx, "init", "-input=false", "-no-color")
}

// Apply runs `apply -auto-approve` plus extra args.
func (w *Workdir) Apply(ctx context.Context, extra ...string) Result {
	return w.Run(ctx, append([]string{"apply", "-auto-approve", "-input=false", "-no-color"}, extra...)...)
}

// Plan runs `plan -detailed-exitcode` plus extra args. It returns whether the
// plan has changes (exit code 2); exit code 2 is not an error.
func (w *Workdir) Plan(ctx context.Context, extra ...string) (changes bool, r Result) {
	r = w.Run(ctx, append([]string{"plan", "-detailed-exitcode", "-input=false", "-no-color"}, extra...)...)
	if r.ExitCode == 2 {
		r.Err = nil
		return true, r
	}
	return false, r
}

// Destroy runs `destroy -auto-approve`.
func (w *Workdir) Destroy(ctx context.Context, extra ...string) Result {
	return w.Run(ctx, append([]string{"destroy", "-auto-approve", "-input=false", "-no-color"}, extra...)...)
}

// OutputJSON runs `output -json` (of one output when name is not empty).
func (w *Workdir) OutputJSON(ctx context.Context, name string) Result {
	args := []string{"output", "-json", "-no-color"}
	if name != "" {
		args = append(args, name)
	}
	return w.Run(ctx, args...)
}

// ShowJSON runs `show -json` (of the state, or of a saved plan file).
func (w *Workdir) ShowJSON(ctx context.Context, planFile ...string) Result {
	return w.Run(ctx, append([]string{"show", "-json", "-no-color"}, planFile...)...)
}

// Must fails tb if r is an error and returns r.
func Must(tb testing.TB, r Result) Result {
	tb.Helper()
	if r.Err != nil {
		tb.Fatal(r.Err)
	}
	return r
}

// StateResource is one resource instance of `show -json` output.
type StateResource struct {
	Address string         `json:"address"`
	Mode    string         `json:"mode"`
	Type    string         `json:"type"`
	Name    string         `json:"name"`
	Values  map[string]any `json:"values"`
}

type stateModule struct {
	Resources    []StateResource `json:"resources"`
	ChildModules []stateModule   `json:"child_modules"`
}

// ParseState returns every resource instance (managed and data) in the
// output of `show -json` of a state.
func ParseState(showJSON string) ([]StateResource, error) {
	var doc struct {
		Values *struct {
			RootModule stateModule `json:"root_module"`
		} `json:"values"`
	}
	if err := json.Unmarshal([]byte(showJSON), &doc); err != nil {
		return nil, fmt.Errorf("testcli: parse show -json: %w", err)
	}
	if doc.Values == nil {
		return nil, nil
	}
	var out []StateResource
	var walk func(m stateModule)
	walk = func(m stateModule) {
		out = append(out, m.Resources...)
		for _, c := range m.ChildModules {
			walk(c)
		}
	}
	walk(doc.Values.RootModule)
	return out, nil
}
