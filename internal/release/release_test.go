package release

import (
	"archive/zip"
	"bufio"
	"context"
	"crypto/sha256"
	"debug/elf"
	"debug/macho"
	"debug/pe"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/dirhash"

	"github.com/kayo-labs/terraform-provider-kayo/internal/testcli"
)

const project = "terraform-provider-kayo"

var platforms = []string{
	"linux_amd64", "linux_arm64", "darwin_amd64", "darwin_arm64", "windows_amd64", "windows_arm64",
}

// exeFormat is the executable format each OS loads, checked by its header:
// a zip with a binary for another platform would install and not run.
var exeFormat = map[string]func(string) (string, error){
	"linux": func(p string) (string, error) {
		f, err := elf.Open(p)
		return machineOf(f, err, func(f *elf.File) string { return f.Machine.String() })
	},
	"darwin": func(p string) (string, error) {
		f, err := macho.Open(p)
		return machineOf(f, err, func(f *macho.File) string { return f.Cpu.String() })
	},
	"windows": func(p string) (string, error) {
		f, err := pe.Open(p)
		return machineOf(f, err, func(f *pe.File) string { return fmt.Sprintf("pe-%#x", f.Machine) })
	},
}

// wantMachine: the machine each platform's header names.
var wantMachine = map[string]string{
	"linux_amd64": "EM_X86_64", "linux_arm64": "EM_AARCH64",
	"darwin_amd64": "CpuAmd64", "darwin_arm64": "CpuArm64",
	"windows_amd64": "pe-0x8664", "windows_arm64": "pe-0xaa64",
}

func machineOf[F interface{ Close() error }](f F, err error, m func(F) string) (string, error) {
	if err != nil {
		return "", err
	}
	defer f.Close()
	return m(f), nil
}

// snapshot returns the dist directory and version of `make
// release-snapshot`, skipping the test when it was not built.
func snapshot(t *testing.T) (dist, version string) {
	t.Helper()
	dist, version = os.Getenv("KAYO_RELEASE_DIST"), os.Getenv("KAYO_VERSION")
	if dist == "" || version == "" {
		t.Skip("needs a release snapshot: run `make release-test` (sets KAYO_RELEASE_DIST and KAYO_VERSION)")
	}
	return dist, version
}

func zipName(version, platform string) string {
	return fmt.Sprintf("%s_%s_%s.zip", project, version, platform)
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestReleaseArtifacts checks the snapshot as a registry would: one zip
// per platform holding the binary alone, SHA256SUMS listing each zip and
// the manifest with their digests, the manifest's protocol 6.0, and the
// version the binary reports.
func TestReleaseArtifacts(t *testing.T) {
	dist, version := snapshot(t)
	sums := map[string]string{}
	f, err := os.Open(filepath.Join(dist, fmt.Sprintf("%s_%s_SHA256SUMS", project, version)))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 2 {
			t.Fatalf("SHA256SUMS line %q: want '<sha256>  <file>'", sc.Text())
		}
		sums[fields[1]] = fields[0]
	}
	f.Close()
	manifest := fmt.Sprintf("%s_%s_manifest.json", project, version)
	want := []string{manifest}
	for _, p := range platforms {
		want = append(want, zipName(version, p))
	}
	root, err := testcli.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	// The manifest is terraform-registry-manifest.json under its release
	// name (a release uploads it; a snapshot only lists it).
	manifestPath := filepath.Join(root, "terraform-registry-manifest.json")
	for _, name := range want {
		sum, ok := sums[name]
		if !ok {
			t.Errorf("SHA256SUMS lacks %s; it lists %v", name, sums)
			continue
		}
		path := filepath.Join(dist, name)
		if name == manifest {
			path = manifestPath
		}
		if got := sha256File(t, path); got != sum {
			t.Errorf("%s: sha256 %s, SHA256SUMS says %s", name, got, sum)
		}
	}
	if len(sums) != len(want) {
		t.Errorf("SHA256SUMS lists %d files, want %d: %v", len(sums), len(want), sums)
	}

	var m struct {
		Version  int `json:"version"`
		Metadata struct {
			ProtocolVersions []string `json:"protocol_versions"`
		} `json:"metadata"`
	}
	b, err := os.ReadFile(manifestPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil || m.Version != 1 || strings.Join(m.Metadata.ProtocolVersions, ",") != "6.0" {
		t.Errorf("manifest %s = %s (err %v): want version 1, protocol_versions [\"6.0\"]", manifest, b, err)
	}

	for _, p := range platforms {
		zr, err := zip.OpenReader(filepath.Join(dist, zipName(version, p)))
		if err != nil {
			t.Fatal(err)
		}
		bin := project + "_v" + version
		if strings.HasPrefix(p, "windows") {
			bin += ".exe"
		}
		var names []string
		for _, zf := range zr.File {
			names = append(names, zf.Name)
		}
		zr.Close()
		if len(names) != 1 || names[0] != bin {
			t.Errorf("%s holds %v, want exactly [%s]", zipName(version, p), names, bin)
			continue
		}
		goos := strings.SplitN(p, "_", 2)[0]
		got, err := exeFormat[goos](unpack(t, filepath.Join(dist, zipName(version, p)), t.TempDir()))
		if err != nil || got != wantMachine[p] {
			t.Errorf("%s: binary for %q (err %v), want a %s executable for %s", zipName(version, p), got, err, goos, wantMachine[p])
		}
	}

	// The binary of this platform reports the release's version.
	bin := unpack(t, filepath.Join(dist, zipName(version, runtime.GOOS+"_"+runtime.GOARCH)), t.TempDir())
	out, err := exec.Command(bin, "-version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != project+" v"+version {
		t.Errorf("%s -version = %q (err %v), want %q", bin, out, err, project+" v"+version)
	}
}

// unpack extracts the zip's one file into dir and returns its path.
func unpack(t *testing.T, zipPath, dir string) string {
	t.Helper()
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	if len(zr.File) != 1 {
		t.Fatalf("%s holds %d files, want 1", zipPath, len(zr.File))
	}
	rc, err := zr.File[0].Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	dst := filepath.Join(dir, filepath.Base(zr.File[0].Name))
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, rc); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// packedMirror lays zipPath out as a packed filesystem mirror
// (HOST/NAMESPACE/TYPE/terraform-provider-TYPE_VERSION_OS_ARCH.zip) and
// writes a CLI config installing local/kayo/kayo from it only.
func packedMirror(t *testing.T, zipPath, version string) *testcli.Mirror {
	t.Helper()
	base := t.TempDir()
	dir := filepath.Join(base, "mirror", "local", "kayo", "kayo")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, zipName(version, runtime.GOOS+"_"+runtime.GOARCH)), b, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(base, "cli.tfrc")
	body := fmt.Sprintf("provider_installation {\n  filesystem_mirror {\n    path    = %q\n    include = [\"local/kayo/kayo\"]\n  }\n}\n", filepath.Join(base, "mirror"))
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return &testcli.Mirror{Dir: filepath.Join(base, "mirror"), ConfigFile: cfg}
}

// tamper writes a copy of zipPath whose binary has one byte more.
func tamper(t *testing.T, zipPath string) string {
	t.Helper()
	bin := unpack(t, zipPath, t.TempDir())
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), filepath.Base(zipPath))
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	w, err := zw.CreateHeader(&zip.FileHeader{Name: filepath.Base(bin), Method: zip.Deflate})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(append(b, 0)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

const config = `terraform {
  required_providers {
    kayo = {
      source  = "local/kayo/kayo"
      version = "%s"
    }
  }
}

resource "kayo_host" "y21" {
  name             = "Y-21-2k8x64"
  address          = "192.0.2.21"
  os_edition       = "enterprise"
  processor_vendor = "intel"
  processor_model  = "Xeon E5440"
  processor_cores  = 8
  memory_mb        = 32768
  network_adapters = [{ name = "Public", network = "192.0.2.0/24", address = "192.0.2.21" }]
}
`

var h1Line = regexp.MustCompile(`"(h1:[A-Za-z0-9+/=]+)"`)

// TestReleaseInstall installs the snapshot's zip for this platform through
// each CLI from a packed filesystem mirror: init records the zip's h1
// checksum in the lock file, apply runs the released binary, and init with
// that lock file refuses a tampered zip.
func TestReleaseInstall(t *testing.T) {
	dist, version := snapshot(t)
	zipPath := filepath.Join(dist, zipName(version, runtime.GOOS+"_"+runtime.GOARCH))
	wantH1, err := dirhash.HashZip(zipPath, dirhash.Hash1)
	if err != nil {
		t.Fatal(err)
	}
	for _, cli := range testcli.CLIs(t) {
		t.Run(cli.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			wd := testcli.NewWorkdir(cli, t.TempDir(), packedMirror(t, zipPath, version))
			wd.Env = append(wd.Env, "KAYO_DATA_DIR="+t.TempDir())
			if err := wd.WriteFile("main.tf", fmt.Sprintf(config, version)); err != nil {
				t.Fatal(err)
			}
			testcli.Must(t, wd.Init(ctx))
			lock, err := os.ReadFile(filepath.Join(wd.Dir, ".terraform.lock.hcl"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(lock), `provider "local/kayo/kayo"`) || !strings.Contains(string(lock), `version     = "`+version+`"`) {
				t.Fatalf("lock file does not pin local/kayo/kayo %s:\n%s", version, lock)
			}
			var h1s []string
			for _, m := range h1Line.FindAllStringSubmatch(string(lock), -1) {
				h1s = append(h1s, m[1])
			}
			if len(h1s) != 1 || h1s[0] != wantH1 {
				t.Errorf("lock file h1 checksums %v, want [%s] (the zip's):\n%s", h1s, wantH1, lock)
			}
			testcli.Must(t, wd.Apply(ctx))
			state := testcli.Must(t, wd.ShowJSON(ctx)).Stdout
			if !strings.Contains(state, `"Y-21-2k8x64"`) {
				t.Errorf("apply through the released binary left no host in the state:\n%s", state)
			}

			// A tampered zip, with the lock file of the genuine one.
			bad := testcli.NewWorkdir(cli, t.TempDir(), packedMirror(t, tamper(t, zipPath), version))
			if err := bad.WriteFile("main.tf", fmt.Sprintf(config, version)); err != nil {
				t.Fatal(err)
			}
			if err := bad.WriteFile(".terraform.lock.hcl", string(lock)); err != nil {
				t.Fatal(err)
			}
			r := bad.Init(ctx)
			if r.Err == nil {
				t.Fatalf("init installed a tampered zip:\n%s", r.Stdout)
			}
			if msg := r.Stderr + r.Stdout; !strings.Contains(msg, "checksum") {
				t.Errorf("init refused the tampered zip without naming the checksum:\n%s", msg)
			}
			if _, err := os.Stat(filepath.Join(bad.Dir, ".terraform", "providers")); err == nil {
				entries, _ := filepath.Glob(filepath.Join(bad.Dir, ".terraform", "providers", "local", "kayo", "kayo", version, "*", "*"))
				if len(entries) > 0 {
					t.Errorf("init left the tampered provider installed: %v", entries)
				}
			}
		})
	}
}
