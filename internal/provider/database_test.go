package provider

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
)

// A damaged or emptied cluster.db makes plan fail with an error naming the
// file and the way back (kayoctl restore), not a crashed plugin and not a
// plan to re-create everything; once the file is back the plan is empty.
func TestAccDatabaseDamaged(t *testing.T) {
	if os.Getenv(envTestEtcd) != "" {
		t.Skip("the cluster database is in etcd: no cluster.db to damage")
	}
	dir := t.TempDir()
	db := filepath.Join(dir, engine.DatabaseFile)
	cfg := providerBlock(dir) + seedHost("y21", "Y-21-2k8x64", 21).hcl()
	var good []byte
	save := func() {
		var err error
		if good, err = os.ReadFile(db); err != nil {
			t.Fatal(err)
		}
	}
	put := func(b []byte) func() {
		return func() {
			if err := os.WriteFile(db, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{Config: cfg},
			{
				// truncate -s 8192 cluster.db; terraform plan
				PreConfig: func() {
					save()
					put(good[:8192])()
				},
				Config:      cfg,
				PlanOnly:    true,
				ExpectError: errRe("the cluster database " + db + " is damaged"),
			},
			{
				PreConfig: put(nil), // : > cluster.db
				Config:    cfg,
				PlanOnly:  true,
				// A store opened before says the file is empty; a fresh
				// provider process says the database existed.
				ExpectError: regexp.MustCompile(regexp.QuoteMeta(db) + `\s+is\s+(empty|damaged\s+\(the\s+file\s+is\s+empty)`),
			},
			{
				PreConfig: func() { put(good)() },
				Config:    cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectEmptyPlan(),
				}},
			},
		},
	})
}
