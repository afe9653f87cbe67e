package provider

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
)

func fileSHA(t *testing.T, path string) string {
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

// gptImage makes a 1 GiB sparse image with a GPT (sgdisk -o: protective
// MBR, primary and backup headers).
func gptImage(t *testing.T, path string) {
	t.Helper()
	if _, err := exec.LookPath("sgdisk"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (.ci/run installs gdisk)", err)
		}
		t.Skipf("skipping: %v (apt-get install gdisk)", err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 1<<30); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sgdisk", "-o", "-n", "1:2048:+64M", path).CombinedOutput(); err != nil {
		t.Fatalf("sgdisk: %v\n%s", err, out)
	}
}

// A LUN path holding a GPT is refused at plan — without force_format_over,
// with force_format, and as a regular file without file_backed — and not
// a byte of it changes; naming the signature formats it.
func TestAccSharedVolume_gptRefused(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(t.TempDir(), "x.img")
	gptImage(t, img)
	sum := fileSHA(t, img)
	unchanged := func() {
		if got := fileSHA(t, img); got != sum {
			t.Fatalf("the refused GPT image changed: sha256 %s -> %s", sum, got)
		}
	}
	base := twoNodeCluster(dir)
	vol := func(extra ...string) string {
		return base + volumeHCL("x", append([]string{fmt.Sprintf("lun = %q", img), `size_gib = 1`, `drive_letter = "X"`}, extra...)...)
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{Config: base},
			{Config: vol(`file_backed = true`), PlanOnly: true,
				ExpectError: errRe(`force_format_over: LUN "` + img + `" (` + img + `) holds "gpt" (GPT partition table at byte 512); formatting would destroy it`)},
			{PreConfig: unchanged, Config: vol(`file_backed = true`, `force_format = true`), PlanOnly: true,
				ExpectError: errRe(`(it is not set). If what it holds is not needed, set force_format_over = "gpt"`)},
			{PreConfig: unchanged, Config: vol(`file_backed = true`, `force_format_over = "luks"`), PlanOnly: true,
				ExpectError: errRe(`(it says "luks")`)},
			{PreConfig: unchanged, Config: vol(), PlanOnly: true,
				ExpectError: errRe(`file_backed: lun "` + img + `" is a regular file, not a block device`)},
			{PreConfig: unchanged, Config: vol(`file_backed = true`, `force_format_over = "gpt"`),
				Check: volumeIs(dir, "X", mountCount(2))},
		},
	})
}

// A LUN smaller than size_gib (the repro: a 512 MiB small.img,
// size_gib = 1) is refused at plan; switching lun then works (the failed
// creation used to block the drive letter for good).
func TestAccSharedVolume_tooSmallLUN(t *testing.T) {
	dir := t.TempDir()
	base := twoNodeCluster(dir)
	small := func() {
		p := filepath.Join(dir, "san", "small.img")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, 512<<20); err != nil {
			t.Fatal(err)
		}
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{Config: base},
			{PreConfig: small, Config: base + volumeHCL("s", `lun = "small"`, `size_gib = 1`, `drive_letter = "S"`),
				ExpectError: errRe(`is larger than LUN "small"`)},
			{Config: base + volumeHCL("s", `lun = "big"`, `size_gib = 1`, `drive_letter = "S"`),
				Check: volumeIs(dir, "S", mountCount(2))},
		},
	})
}

// A LUN zeroed behind the provider's back: the VM reads failed with the
// reason, and terraform destroy succeeds, leaving the LUN as it was.
func TestAccSharedVolume_lostLUNDestroy(t *testing.T) {
	dir := t.TempDir()
	lun := filepath.Join(dir, "san", "lun0.img")
	cfg := twoNodeCluster(dir) + volumeHCL("o", `lun = "lun0"`, `size_gib = 1`, `drive_letter = "O"`) +
		vmHCL("", "WEB01", `cluster_id = kayo_cluster.c.id`, `volume_id = kayo_shared_volume.o.id`, vhd(1, "dynamic"), `memory_mb = 1024`)
	var sum string
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		CheckDestroy: func(*terraform.State) error {
			if got := fileSHA(t, lun); got != sum {
				return fmt.Errorf("destroy wrote to the lost LUN")
			}
			return noClusters(dir)(nil)
		},
		Steps: []resource.TestStep{
			{Config: cfg, Check: resource.TestCheckResourceAttr("kayo_virtual_machine.web", "status", "running")},
			{
				PreConfig: func() {
					testRuntime.ReleaseMounts()
					f, err := os.OpenFile(lun, os.O_RDWR, 0)
					if err != nil {
						t.Fatal(err)
					}
					_, err = f.WriteAt(make([]byte, 64<<10), 0)
					if cerr := f.Close(); err == nil {
						err = cerr
					}
					if err != nil {
						t.Fatal(err)
					}
					sum = fileSHA(t, lun)
					waitVolumeLost(t, dir, "HVCLUSTER/O")
				},
				RefreshState: true, ExpectNonEmptyPlan: true,
				Check: resource.ComposeTestCheckFunc(
					resource.TestCheckResourceAttr("kayo_virtual_machine.web", "status", "failed"),
					resource.TestCheckResourceAttrWith("kayo_virtual_machine.web", "status_reason", func(v string) error {
						if !strings.Contains(v, `its volume is gone: LUN "lun0"`) {
							return fmt.Errorf("status_reason %q", v)
						}
						return nil
					}),
				),
			},
			{Config: cfg, Destroy: true},
		},
	})
	if _, err := os.Stat(lun); errors.Is(err, os.ErrNotExist) {
		t.Fatal("destroy removed the lost LUN's image")
	}
}
