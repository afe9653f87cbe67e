package provider

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

// volumeHCL is a kayo_shared_volume named res on kayo_cluster.c; attrs are
// HCL attribute lines.
func volumeHCL(res string, attrs ...string) string {
	return fmt.Sprintf("resource \"kayo_shared_volume\" %q {\n  cluster_id = kayo_cluster.c.id\n%s\n}\n",
		res, "  "+strings.Join(attrs, "\n  "))
}

var uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// volumeIs asserts the database record of the cluster's volume at letter
// and its on-disk superblock and slots.
func volumeIs(dir, letter string, fn func(engine.Volume, kayofs.Superblock, []kayofs.SlotInfo) error) func(*terraform.State) error {
	return dbCheck(dir, func(ctx context.Context, e *engine.Engine) error {
		v, err := e.LookupVolume(ctx, "HVCLUSTER/"+letter)
		if err != nil {
			return err
		}
		fd, err := kayofs.OpenDevice(v.Device)
		if err != nil {
			return err
		}
		defer fd.Close()
		sb, err := kayofs.ReadSuperblock(fd)
		if err != nil {
			return err
		}
		slots, err := kayofs.Slots(fd)
		if err != nil {
			return err
		}
		held := map[string]int{}
		for _, si := range slots {
			if si.State != "free" {
				held[si.Node] = si.Slot
			}
		}
		if fmt.Sprint(held) != fmt.Sprint(v.Mounts) {
			return fmt.Errorf("on-disk slots %v differ from the recorded mounts %v", held, v.Mounts)
		}
		if probs, err := kayofs.Check(fd); err != nil || len(probs) > 0 {
			return fmt.Errorf("kayofs check: %v %v", probs, err)
		}
		return fn(v, *sb, slots)
	})
}

func mountCount(n int) func(engine.Volume, kayofs.Superblock, []kayofs.SlotInfo) error {
	return func(v engine.Volume, _ kayofs.Superblock, _ []kayofs.SlotInfo) error {
		if len(v.Mounts) != n {
			return fmt.Errorf("volume %s is mounted on %d nodes (%v), want %d", v.DriveLetter, len(v.Mounts), v.Mounts, n)
		}
		return nil
	}
}

// withTestVolume runs fn with an engine of the test's data dir (closed
// after) and volume ref as it records it.
func withTestVolume(t *testing.T, dir, ref string, fn func(context.Context, *engine.Engine, engine.Volume)) {
	t.Helper()
	e, err := engine.Open(testEngine(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	v, err := e.LookupVolume(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	fn(ctx, e, v)
}

func writeFile(t *testing.T, dir, ref, name string) {
	t.Helper()
	withTestVolume(t, dir, ref, func(ctx context.Context, e *engine.Engine, v engine.Volume) {
		err := e.WithVolume(ctx, v.ID, "Y-21-2k8x64", func(fv *kayofs.Volume) error {
			f, err := fv.Create(name)
			if err != nil {
				return err
			}
			_, err = f.WriteAt([]byte("<vm/>"), 0)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

func update(res string) resource.ConfigPlanChecks {
	return resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(res, plancheck.ResourceActionUpdate)}}
}

func replace(res string) resource.ConfigPlanChecks {
	return resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(res, plancheck.ResourceActionReplace)}}
}

// Format + mount on the seed's two nodes, every in-place change, import by
// UUID and by cluster/letter, both replacements, and destroy with files.
func TestAccSharedVolume_lifecycle(t *testing.T) {
	dir := t.TempDir()
	base := twoNodeCluster(dir)
	vol := func(extra ...string) string {
		attrs := map[string]string{"lun": `"lun0"`, "size_gib": "10", "label": `"VMSTORE"`, "drive_letter": `"O"`, "node_slots": "4"}
		for _, x := range extra {
			k, v, _ := strings.Cut(x, "=")
			attrs[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		var lines []string
		for _, k := range []string{"lun", "size_gib", "label", "drive_letter", "node_slots", "block_size", "force_destroy"} {
			if v, ok := attrs[k]; ok {
				lines = append(lines, k+" = "+v)
			}
		}
		return base + volumeHCL("o", lines...)
	}
	var uuid string
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{
				Config: vol(),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("kayo_shared_volume.o", tfjsonpath.New("id"), knownvalue.StringRegexp(uuidRe)),
					statecheck.ExpectKnownValue("kayo_shared_volume.o", tfjsonpath.New("mounts"), knownvalue.MapSizeExact(2)),
					statecheck.ExpectKnownValue("kayo_shared_volume.o", tfjsonpath.New("block_size"), knownvalue.Int64Exact(4096)),
				},
				Check: resource.ComposeTestCheckFunc(
					volumeIs(dir, "O", func(v engine.Volume, sb kayofs.Superblock, _ []kayofs.SlotInfo) error {
						if len(v.Mounts) != 2 || sb.Label != "VMSTORE" || sb.SlotCount != 4 {
							return fmt.Errorf("mounts %v, label %q, %d slots", v.Mounts, sb.Label, sb.SlotCount)
						}
						uuid = v.ID
						return nil
					}),
					resource.TestCheckResourceAttrWith("kayo_shared_volume.o", "free_bytes", func(s string) error {
						if len(s) < 10 { // ≥ 1 GB free of 10 GiB
							return fmt.Errorf("free_bytes %s", s)
						}
						return nil
					}),
				),
			},
			{Config: vol(`label = "VMSTORE2"`), ConfigPlanChecks: update("kayo_shared_volume.o"),
				Check: volumeIs(dir, "O", func(_ engine.Volume, sb kayofs.Superblock, _ []kayofs.SlotInfo) error {
					if sb.Label != "VMSTORE2" {
						return fmt.Errorf("label %q", sb.Label)
					}
					return nil
				})},
			{Config: vol(`label = "VMSTORE2"`, `drive_letter = "P"`), ConfigPlanChecks: update("kayo_shared_volume.o"),
				Check: volumeIs(dir, "P", mountCount(2))},
			{Config: vol(`label = "VMSTORE2"`, `drive_letter = "P"`, `size_gib = 20`), ConfigPlanChecks: update("kayo_shared_volume.o"),
				Check: volumeIs(dir, "P", func(v engine.Volume, sb kayofs.Superblock, _ []kayofs.SlotInfo) error {
					if sb.Size() < 19<<30 || v.ID != uuid {
						return fmt.Errorf("after growing: %d bytes, id %s (was %s)", sb.Size(), v.ID, uuid)
					}
					return nil
				})},
			{Config: vol(`label = "VMSTORE2"`, `drive_letter = "P"`, `size_gib = 20`, `node_slots = 6`),
				ConfigPlanChecks: update("kayo_shared_volume.o"),
				Check: volumeIs(dir, "P", func(_ engine.Volume, sb kayofs.Superblock, _ []kayofs.SlotInfo) error {
					if sb.SlotCount != 6 {
						return fmt.Errorf("%d slots", sb.SlotCount)
					}
					return nil
				})},
			{ResourceName: "kayo_shared_volume.o", ImportState: true, ImportStateVerify: true,
				ImportStateIdFunc: func(s *terraform.State) (string, error) {
					return s.RootModule().Resources["kayo_shared_volume.o"].Primary.ID, nil
				}},
			{ResourceName: "kayo_shared_volume.o", ImportState: true, ImportStateVerify: true, ImportStateId: "HVCLUSTER/P"},
			{Config: vol(`label = "VMSTORE2"`, `drive_letter = "P"`, `size_gib = 5`, `node_slots = 6`), PlanOnly: true,
				ExpectError: errRe(`cannot shrink the volume from 20 GiB to 5 GiB`)},
			{Config: vol(`label = "VMSTORE2"`, `drive_letter = "P"`, `size_gib = 20`, `node_slots = 3`), PlanOnly: true,
				ExpectError: errRe(`cannot go from 6 to 3 node slots`)},
			{Config: vol(`label = "VMSTORE2"`, `drive_letter = "P"`, `size_gib = 20`, `node_slots = 6`, `block_size = 8192`),
				ConfigPlanChecks: replace("kayo_shared_volume.o"),
				Check: volumeIs(dir, "P", func(v engine.Volume, sb kayofs.Superblock, _ []kayofs.SlotInfo) error {
					if sb.BlockSize != 8192 || v.ID == uuid || len(v.Mounts) != 2 {
						return fmt.Errorf("after replacement: block size %d, id %s (old %s), mounts %v", sb.BlockSize, v.ID, uuid, v.Mounts)
					}
					return nil
				})},
			{Config: vol(`lun = "lun1"`, `label = "VMSTORE2"`, `drive_letter = "P"`, `size_gib = 20`, `node_slots = 6`, `block_size = 8192`),
				ConfigPlanChecks: replace("kayo_shared_volume.o"),
				Check: resource.ComposeTestCheckFunc(volumeIs(dir, "P", mountCount(2)),
					func(*terraform.State) error {
						if _, err := os.Stat(filepath.Join(dir, "san", "lun0.img")); !os.IsNotExist(err) {
							return fmt.Errorf("the replaced volume's LUN image is still there: %v", err)
						}
						return nil
					})},
			{
				// Destroy refuses while files exist.
				PreConfig:   func() { writeFile(t, dir, "HVCLUSTER/P", "WEB01.xml") },
				Config:      base,
				ExpectError: errRe(`still holds 1 entries (WEB01.xml); destroying it would lose them. Remove them, or set force_destroy = true`),
			},
			{Config: vol(`lun = "lun1"`, `label = "VMSTORE2"`, `drive_letter = "P"`, `size_gib = 20`, `node_slots = 6`, `block_size = 8192`, `force_destroy = true`),
				ConfigPlanChecks: update("kayo_shared_volume.o")},
			{Config: base, Check: func(*terraform.State) error {
				if _, err := os.Stat(filepath.Join(dir, "san", "lun1.img")); !os.IsNotExist(err) {
					return fmt.Errorf("LUN image left behind: %v", err)
				}
				return nil
			}},
		},
	})
}

// ext4Image makes an image that carries an ext4 superblock signature.
func ext4Image(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	fd, err := kayofs.CreateImage(path, 2<<30)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	sb := make([]byte, 1024)
	binary.LittleEndian.PutUint16(sb[56:], 0xEF53)
	binary.LittleEndian.PutUint32(sb[0x60:], 0x40) // extents
	if _, err := fd.WriteAt(sb, 1024); err != nil {
		t.Fatal(err)
	}
}

// mountedImage formats an image with Kayo FS and leaves it mounted
// (detached) by a node of some other installation.
func mountedImage(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	fd, err := kayofs.CreateImage(path, 2<<30)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	if _, err := kayofs.Format(fd, kayofs.FormatOptions{Slots: 2}); err != nil {
		t.Fatal(err)
	}
	v, err := kayofs.Mount(fd, "OTHER-HOST")
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Detach(); err != nil {
		t.Fatal(err)
	}
}

// Every refusal, at plan time where the committed state allows.
func TestAccSharedVolume_refusals(t *testing.T) {
	dir := t.TempDir()
	base := twoNodeCluster(dir)
	a := volumeHCL("a", `lun = "lun0"`, `size_gib = 2`, `drive_letter = "O"`)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{Config: base + volumeHCL("x", `lun = "lun0"`, `size_gib = 2`, `drive_letter = "OO"`), PlanOnly: true,
				ExpectError: errRe(`drive_letter: "OO" is not allowed; allowed: one upper-case letter from D to Z`)},
			{Config: base + volumeHCL("x", `lun = "lun0"`, `size_gib = 2`, `drive_letter = "1"`), PlanOnly: true,
				ExpectError: errRe(`drive_letter: "1" is not allowed`)},
			{Config: base + volumeHCL("x", `lun = "lun0"`, `size_gib = 2`, `drive_letter = "O"`, `block_size = 5000`), PlanOnly: true,
				ExpectError: errRe(`block_size: "5000" is not allowed; allowed: a power of two from 4096 to 65536`)},
			{Config: base + volumeHCL("x", `lun = "lun0"`, `size_gib = 2`, `drive_letter = "O"`, `block_size = 131072`), PlanOnly: true,
				ExpectError: errRe(`block_size: "131072" is not allowed`)},
			{Config: base},
			{Config: base + volumeHCL("x", `lun = "lun0"`, `size_gib = 2`, `drive_letter = "O"`, `node_slots = 1`), PlanOnly: true,
				ExpectError: errRe(`1 node slots are fewer than the 2 nodes of cluster "HVCLUSTER"`)},
			{
				PreConfig:   func() { ext4Image(t, filepath.Join(dir, "san", "lunx.img")) },
				Config:      base + volumeHCL("x", `lun = "lunx"`, `size_gib = 2`, `drive_letter = "X"`),
				PlanOnly:    true,
				ExpectError: errRe(`holds "ext4" (ext2/3/4 file system at byte 1080); formatting would destroy it, and force_format does not override`),
			},
			{
				Config:      base + volumeHCL("x", `lun = "lunx"`, `size_gib = 2`, `drive_letter = "X"`, `force_format = true`),
				PlanOnly:    true,
				ExpectError: errRe(`set force_format_over = "ext4"`),
			},
			{
				PreConfig:   func() { mountedImage(t, filepath.Join(dir, "san", "lunm.img")) },
				Config:      base + volumeHCL("m", `lun = "lunm"`, `size_gib = 2`, `drive_letter = "M"`, `force_format = true`),
				PlanOnly:    true,
				ExpectError: errRe(`holds a Kayo FS volume that is mounted elsewhere, by OTHER-HOST (slot 0)`),
			},
			{Config: base + a + volumeHCL("x", `lun = "lunx"`, `size_gib = 2`, `drive_letter = "X"`, `force_format_over = "ext4"`),
				Check: volumeIs(dir, "X", mountCount(2))},
			{Config: base + a + volumeHCL("x", `lun = "lunx"`, `size_gib = 2`, `drive_letter = "X"`, `force_format_over = "ext4"`) +
				volumeHCL("dup", `lun = "lun2"`, `size_gib = 2`, `drive_letter = "O"`),
				ExpectError: errRe(`drive_letter: O: is already volume`)},
			{Config: base + a + volumeHCL("x", `lun = "lunx"`, `size_gib = 2`, `drive_letter = "X"`, `force_format_over = "ext4"`) +
				volumeHCL("dup", `lun = "lun0"`, `size_gib = 2`, `drive_letter = "Q"`, `force_format = true`),
				ExpectError: errRe(`LUN "lun0"`)},
			{
				// Changing a drive letter to one the cluster uses fails at plan.
				Config:      base + a + volumeHCL("x", `lun = "lunx"`, `size_gib = 2`, `drive_letter = "O"`, `force_format_over = "ext4"`),
				PlanOnly:    true,
				ExpectError: errRe(`drive_letter: O: is already volume`),
			},
		},
	})
}

func manyHosts(n int) (string, []string) {
	var b strings.Builder
	var res []string
	for i := 1; i <= n; i++ {
		r := fmt.Sprintf("h%02d", i)
		b.WriteString(seedHost(r, fmt.Sprintf("Y-%02d-2k8x64", 20+i), 20+i).hcl())
		res = append(res, r)
	}
	return b.String(), res
}

// Sixteen nodes mount one volume; mounts follow the cluster's membership
// (a node added, two removed) without any change to the volume resource.
func TestAccSharedVolume_sixteenNodes(t *testing.T) {
	dir := t.TempDir()
	hosts, res := manyHosts(16)
	cfg := func(nodes []string) string {
		return providerBlock(dir) + hosts + clusterHCL("HVCLUSTER", "192.0.2.50/24", nodes...) +
			volumeHCL("o", `lun = "lun0"`, `size_gib = 16`, `label = "VMSTORE"`, `drive_letter = "O"`, `node_slots = 16`)
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{Config: cfg(res[:15]), Check: volumeIs(dir, "O", mountCount(15)),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("kayo_shared_volume.o", tfjsonpath.New("mounts"), knownvalue.MapSizeExact(15)),
				}},
			{Config: cfg(res), Check: volumeIs(dir, "O", mountCount(16)),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("kayo_cluster.c", plancheck.ResourceActionUpdate),
					plancheck.ExpectResourceAction("kayo_shared_volume.o", plancheck.ResourceActionNoop),
				}}},
			{Config: cfg(res), RefreshState: false, PlanOnly: true},
			{Config: cfg(append(res[:1:1], res[3:]...)), Check: volumeIs(dir, "O", mountCount(14))},
		},
	})
}
