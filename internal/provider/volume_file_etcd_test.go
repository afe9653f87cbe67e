package provider

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
)

// A kayo_volume_file applied from a machine that reaches only the
// cluster database (no data_dir, no LUN): the bytes go to a node's agent
// through etcd, the next plan is empty, and its removal is the agent's
// too. A source past what a put carries through etcd fails the plan,
// naming source and the limit.
func TestAccVolumeFile_onEtcdWithoutTheLUN(t *testing.T) {
	requireAcc(t)
	eps, applied, fresh := databaseOnlyEnv(t)
	data := make([]byte, 3<<20+99)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "notes.bin")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(t.TempDir(), "huge.iso")
	if err := os.WriteFile(huge, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(huge, engine.MaxPutBytesEtcd+1); err != nil {
		t.Fatal(err)
	}
	infra := seedHost("y21", "Y-21-2k8x64", 21).hcl() + seedHost("y22", "Y-22-2k8x64", 22).hcl() +
		clusterHCL("HVCLUSTER", "192.0.2.50/24", "y21", "y22") +
		volumeHCL("o", `lun = "lun0"`, `size_gib = 1`, `drive_letter = "O"`)
	file := func(source string) string {
		return fmt.Sprintf("resource \"kayo_volume_file\" \"f\" {\n  volume_id = kayo_shared_volume.o.id\n  path = \"docs\\\\notes.bin\"\n  source = %q\n}\n", source)
	}
	record := func(want bool) resource.TestCheckFunc {
		return etcdCheck(eps, "", func(ctx context.Context, e *engine.Engine) error {
			v, err := e.LookupVolume(ctx, "HVCLUSTER/O")
			if err != nil {
				return err
			}
			f, err := e.GetVolumeFile(ctx, v.ID, "docs/notes.bin")
			if !want {
				if err == nil {
					return fmt.Errorf("the file's record is left: %+v", f)
				}
				return nil
			}
			if err != nil {
				return err
			}
			if f.Writing || f.SizeBytes != int64(len(data)) {
				return fmt.Errorf("the file's record: %+v", f)
			}
			return nil
		})
	}
	startEtcdAgents(t, eps, "", applied, "Y-21-2k8x64", "Y-22-2k8x64")
	onlyDB := "provider \"kayo\" {}\n"
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{Config: fmt.Sprintf("provider \"kayo\" {\n  data_dir = %q\n}\n", applied) + infra},
			{
				PreConfig:   func() { t.Chdir(fresh) },
				Config:      onlyDB + infra + file(huge),
				ExpectError: regexp.MustCompile(`(?s)source:.*huge\.iso.*268435457\s+bytes.*up\s+to\s+268435456\s+bytes`),
			},
			{
				Config: onlyDB + infra + file(src),
				Check: resource.ComposeTestCheckFunc(
					resource.TestCheckResourceAttr("kayo_volume_file.f", "size_bytes", fmt.Sprint(len(data))),
					record(true),
				),
			},
			{Config: onlyDB + infra + file(src), PlanOnly: true},
			{Config: onlyDB + infra, Check: record(false)},
			{
				// Back on the machine that holds the LUN, to destroy.
				PreConfig: func() { t.Chdir(applied) },
				Config:    fmt.Sprintf("provider \"kayo\" {\n  data_dir = %q\n}\n", applied) + infra,
				PlanOnly:  true,
			},
		},
	})
}
