package provider

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/etcdtest"
)

// A plan run on a machine that reaches only the cluster database: the
// hosts, cluster, quorum, volume, VM and data sources applied from one data_dir are planned again from a fresh
// working directory with only KAYO_ETCD_ENDPOINTS set, where no LUN image
// exists. The plan is empty, the volume's used/free come from what was
// reported into the database, and nothing is recorded (the VM is not
// marked failed for a LUN this machine does not hold).
func TestAccEtcd_planFromDatabaseOnly(t *testing.T) {
	requireAcc(t)
	eps, applied, fresh := databaseOnlyEnv(t)
	resources := seedHost("y21", "Y-21-2k8x64", 21).hcl() + seedHost("y22", "Y-22-2k8x64", 22).hcl() +
		clusterHCL("HVCLUSTER", "192.0.2.50/24", "y21", "y22") +
		volumeHCL("o", `lun = "lun0"`, `size_gib = 1`, `drive_letter = "O"`) +
		vmHCL("", "WEB01", `cluster_id = kayo_cluster.c.id`, `volume_id = kayo_shared_volume.o.id`, vhd(1, "dynamic"), `memory_mb = 1024`) +
		quorumHCL("q", "node_majority") +
		"data \"kayo_hosts\" \"all\" {}\n" +
		"data \"kayo_cluster\" \"c\" {\n  name = kayo_cluster.c.name\n}\n" +
		"data \"kayo_virtual_machine\" \"web\" {\n  cluster_id = kayo_cluster.c.id\n  name = kayo_virtual_machine.web.name\n}\n"
	// The nodes' agents write the VM's files (on etcd the provider does
	// no node's work).
	startEtcdAgents(t, eps, "", applied, "Y-21-2k8x64", "Y-22-2k8x64")
	var used string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{
				Config: fmt.Sprintf("provider \"kayo\" {\n  data_dir = %q\n}\n", applied) + resources,
				Check: resource.ComposeTestCheckFunc(
					resource.TestCheckResourceAttr("kayo_virtual_machine.web", "status", "running"),
					resource.TestCheckResourceAttrWith("kayo_shared_volume.o", "used_bytes", func(v string) error {
						if v == "" || v == "0" {
							return fmt.Errorf("used_bytes %q after apply", v)
						}
						used = v
						return nil
					}),
				),
			},
			{
				// The CI runner: no data_dir, no LUN, only the endpoint.
				PreConfig:        func() { t.Chdir(fresh) },
				Config:           "provider \"kayo\" {}\n" + resources,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
				Check: resource.ComposeTestCheckFunc(
					resource.TestCheckResourceAttr("kayo_virtual_machine.web", "status", "running"),
					resource.TestCheckResourceAttr("data.kayo_virtual_machine.web", "status", "running"),
					resource.TestCheckResourceAttr("kayo_quorum.q", "has_quorum", "true"),
					func(s *terraform.State) error {
						return etcdCheck(eps, "", func(ctx context.Context, e *engine.Engine) error {
							// What the nodes reported after the VM's files were written.
							v, err := e.LookupVolume(ctx, "HVCLUSTER/O")
							if err != nil {
								return err
							}
							st, err := e.VolumeState(ctx, v)
							if err != nil {
								return err
							}
							if st.By == "" || fmt.Sprint(st.UsedBytes) == used {
								return fmt.Errorf("reports %+v: none after the VM's files (used_bytes at the volume's creation %s)", st, used)
							}
							return resource.TestCheckResourceAttr("kayo_shared_volume.o", "used_bytes", fmt.Sprint(st.UsedBytes))(s)
						})(s)
					},
					etcdCheck(eps, "", func(ctx context.Context, e *engine.Engine) error {
						vm, err := e.GetVM(ctx, "HVCLUSTER", "WEB01")
						if err != nil {
							return err
						}
						if vm.Status != engine.VMRunning {
							return fmt.Errorf("the plan recorded WEB01 %s (%s)", vm.Status, vm.StatusReason)
						}
						if _, err := os.Stat(filepath.Join(fresh, engine.DefaultDataDir, engine.SANDir)); err == nil {
							return fmt.Errorf("the plan created an embedded SAN in the fresh directory")
						}
						return nil
					}),
				),
			},
			{
				// Back on the machine that holds the LUN, to destroy.
				PreConfig: func() { t.Chdir(applied) },
				Config:    fmt.Sprintf("provider \"kayo\" {\n  data_dir = %q\n}\n", applied) + resources,
				PlanOnly:  true,
			},
		},
	})
}

// databaseOnlyEnv starts an etcd for t and sets the environment of a
// machine that reaches only it (KAYO_ETCD_ENDPOINTS, no data dir): its
// endpoints, a data dir for the steps that apply as a host-side machine,
// and an empty working directory for the steps run as that CI machine.
func databaseOnlyEnv(t *testing.T) (eps []string, applied, fresh string) {
	t.Helper()
	c := etcdtest.Start(t, etcdtest.Options{})
	eps = c.Endpoints()
	applied = t.TempDir()
	t.Setenv(EnvEtcdEndpoints, eps[0])
	t.Setenv(EnvDataDir, "")
	fresh = filepath.Join(t.TempDir(), "ci-runner")
	if err := os.Mkdir(fresh, 0o755); err != nil {
		t.Fatal(err)
	}
	return eps, applied, fresh
}
