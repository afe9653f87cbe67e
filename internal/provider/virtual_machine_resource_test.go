package provider

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

// labHost is a host registered directly in the engine for VM tests.
type labHost struct {
	name   string
	octet  int
	vendor string
}

// vmLab registers hosts, forms cluster (static address 192.0.2.<static>/24)
// of them and creates a volume at letter on it, directly in the engine:
// the VM tests are about VMs (kayo_shared_volume is another resource).
// It returns the volume's UUID.
func vmLab(t *testing.T, dir, cluster string, static int, letter string, hosts ...labHost) string {
	t.Helper()
	ctx := context.Background()
	e, err := engine.Open(testEngine(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var names []string
	for _, h := range hosts {
		_, err := e.CreateHost(ctx, engine.HostSpec{Name: h.name, Address: fmt.Sprintf("192.0.2.%d", h.octet), OSEdition: "enterprise",
			ProcessorVendor: h.vendor, ProcessorModel: "Xeon E5440", ProcessorCores: 8, MemoryMB: 32768,
			Features: []string{"Hyper-V", "Failover-Clustering"},
			Adapters: []engine.Adapter{{Name: "Public", Network: "192.0.2.0/24", Address: fmt.Sprintf("192.0.2.%d", h.octet)},
				{Name: "Heartbeat", Network: "10.10.10.0/24", Address: fmt.Sprintf("10.10.10.%d", h.octet)}}})
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.name)
	}
	if _, err := e.CreateCluster(ctx, engine.ClusterSpec{Name: cluster, Nodes: names, StaticAddress: fmt.Sprintf("192.0.2.%d/24", static),
		Hypervisor: engine.HypervisorSimulator, HeartbeatTimeoutSeconds: 10}); err != nil {
		t.Fatal(err)
	}
	return labVolume(t, dir, cluster, letter)
}

func labVolume(t *testing.T, dir, cluster, letter string) string {
	t.Helper()
	waitEtcdAgents(t, dir) // on etcd a node's agent formats the LUN
	e, err := engine.Open(testEngine(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	v, err := e.CreateVolume(context.Background(), engine.VolumeSpec{Cluster: cluster, LUN: "lun-" + strings.ToLower(letter), SizeGiB: 100,
		Label: "VMSTORE", DriveLetter: letter, BlockSize: 4096, NodeSlots: 16})
	if err != nil {
		t.Fatal(err)
	}
	return v.ID
}

func labDo(t *testing.T, dir string, fn func(context.Context, *engine.Engine) error) {
	t.Helper()
	waitEtcdAgents(t, dir)
	if err := dbCheck(dir, fn)(nil); err != nil {
		t.Fatal(err)
	}
}

var seedLab = []labHost{{"Y-21-2k8x64", 21, "intel"}, {"Y-22-2k8x64", 22, "intel"}}

// vmHCL is kayo_virtual_machine.web; extra "key = value" lines add to or
// replace the defaults.
func vmHCL(volID, name string, extra ...string) string {
	lines := []string{`cluster_id = "HVCLUSTER"`, fmt.Sprintf("volume_id = %q", volID), fmt.Sprintf("name = %q", name),
		"memory_mb = 2048", "processor_count = 2", `network_adapters = [{ switch = "Public" }]`}
	for _, x := range extra {
		key := strings.TrimSpace(strings.SplitN(x, "=", 2)[0])
		replaced := false
		for i, l := range lines {
			if strings.TrimSpace(strings.SplitN(l, "=", 2)[0]) == key {
				lines[i], replaced = x, true
			}
		}
		if !replaced {
			lines = append(lines, x)
		}
	}
	return "resource \"kayo_virtual_machine\" \"web\" {\n  " + strings.Join(lines, "\n  ") + "\n}\n"
}

func vhd(size int, typ string) string {
	return fmt.Sprintf("vhd = { size_gib = %d, type = %q }", size, typ)
}

const res = "kayo_virtual_machine.web"

func expectNode(node string) statecheck.StateCheck {
	return statecheck.ExpectKnownValue(res, tfjsonpath.New("current_node"), knownvalue.StringExact(node))
}

func expectAttr(attr, v string) statecheck.StateCheck {
	return statecheck.ExpectKnownValue(res, tfjsonpath.New(attr), knownvalue.StringExact(v))
}

// vmFiles asserts the VM's VHD and configuration file are on the volume.
func vmFiles(dir, volID, name string) resource.TestCheckFunc {
	return dbCheck(dir, func(ctx context.Context, e *engine.Engine) error {
		return e.WithVolume(ctx, volID, "Y-21-2k8x64", func(fv *kayofs.Volume) error {
			for _, f := range []string{name + "/" + name + ".vhd", name + "/" + name + ".xml"} {
				if _, err := fv.Stat(f); err != nil {
					return fmt.Errorf("%s on the volume: %w", f, err)
				}
			}
			return nil
		})
	})
}

func TestAccVirtualMachine_lifecycle(t *testing.T) {
	dir := t.TempDir()
	vol := vmLab(t, dir, "HVCLUSTER", 50, "O", seedLab...)
	cfg := func(extra ...string) string {
		return providerBlock(dir) + vmHCL(vol, "WEB01", append([]string{vhd(40, "dynamic")}, extra...)...)
	}
	ds := `data "kayo_virtual_machine" "web" {
  cluster_id = "HVCLUSTER"
  name       = "WEB01"
}
`
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{
				Config: cfg(`owner_node = "Y-21-2k8x64"`),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(res, plancheck.ResourceActionCreate),
					plancheck.ExpectKnownValue(res, tfjsonpath.New("current_node"), knownvalue.StringExact("Y-21-2k8x64")),
					plancheck.ExpectKnownValue(res, tfjsonpath.New("vhd_path"), knownvalue.StringExact(`O:\WEB01\WEB01.vhd`)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					expectNode("Y-21-2k8x64"), expectAttr("id", "HVCLUSTER/WEB01"), expectAttr("status", "running"),
					expectAttr("vhd_path", `O:\WEB01\WEB01.vhd`), expectAttr("config_path", `O:\WEB01\WEB01.xml`),
					statecheck.ExpectKnownValue(res, tfjsonpath.New("network_adapters").AtSliceIndex(0).AtMapKey("mac_address"),
						knownvalue.StringRegexp(errRe("00-15-5D-"))),
					statecheck.ExpectKnownValue(res, tfjsonpath.New("max_failures"), knownvalue.Int64Exact(1)),
					statecheck.ExpectKnownValue(res, tfjsonpath.New("last_migration"), knownvalue.Null()),
				},
				Check: vmFiles(dir, vol, "WEB01"),
			},
			{
				// Changing the pin migrates in place (live: same vendor).
				Config: cfg(`owner_node = "Y-22-2k8x64"`),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(res, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(res, tfjsonpath.New("current_node"), knownvalue.StringExact("Y-22-2k8x64")),
					plancheck.ExpectUnknownValue(res, tfjsonpath.New("last_migration")),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					expectNode("Y-22-2k8x64"), expectAttr("status", "running"),
					statecheck.ExpectKnownValue(res, tfjsonpath.New("last_migration").AtMapKey("type"), knownvalue.StringExact("live")),
					statecheck.ExpectKnownValue(res, tfjsonpath.New("last_migration").AtMapKey("from"), knownvalue.StringExact("Y-21-2k8x64")),
				},
			},
			{
				Config: cfg(`owner_node = "Y-22-2k8x64"`, `state = "off"`) + ds,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(res, plancheck.ResourceActionUpdate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{expectAttr("status", "off"), expectNode("Y-22-2k8x64"),
					statecheck.ExpectKnownValue("data.kayo_virtual_machine.web", tfjsonpath.New("current_node"), knownvalue.StringExact("Y-22-2k8x64")),
					statecheck.ExpectKnownValue("data.kayo_virtual_machine.web", tfjsonpath.New("vhd_path"), knownvalue.StringExact(`O:\WEB01\WEB01.vhd`)),
				},
			},
			{
				// Off: memory and disk change in place.
				Config:            cfg(`owner_node = "Y-22-2k8x64"`, `state = "running"`),
				ConfigStateChecks: []statecheck.StateCheck{expectAttr("status", "running")},
			},
			{
				Config:            cfg(`owner_node = "Y-22-2k8x64"`, `state = "off"`),
				ConfigStateChecks: []statecheck.StateCheck{expectAttr("status", "off")},
			},
			{
				ResourceName:            res,
				ImportState:             true,
				ImportStateId:           "HVCLUSTER/WEB01",
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"timeouts"},
			},
			{
				// Unpinning moves nothing.
				Config: cfg(`state = "off"`),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(res, plancheck.ResourceActionUpdate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{expectNode("Y-22-2k8x64")},
			},
		},
		CheckDestroy: dbCheck(dir, func(ctx context.Context, e *engine.Engine) error {
			vms, err := e.ListVMs(ctx, "")
			if err != nil || len(vms) != 0 {
				return fmt.Errorf("VMs left after destroy: %d (%v)", len(vms), err)
			}
			return nil
		}),
	})
}

func TestAccVirtualMachine_quickMigrationAcrossVendors(t *testing.T) {
	dir := t.TempDir()
	vol := vmLab(t, dir, "HVCLUSTER", 50, "O", labHost{"Y-21-2k8x64", 21, "intel"}, labHost{"Y-22-2k8x64", 22, "amd"})
	cfg := func(pin string) string {
		return providerBlock(dir) + vmHCL(vol, "WEB01", vhd(10, "fixed"), fmt.Sprintf("owner_node = %q", pin))
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{Config: cfg("Y-21-2k8x64"), ConfigStateChecks: []statecheck.StateCheck{expectNode("Y-21-2k8x64")}},
			{
				Config: cfg("Y-22-2k8x64"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(res, plancheck.ResourceActionUpdate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					expectNode("Y-22-2k8x64"), expectAttr("status", "running"),
					statecheck.ExpectKnownValue(res, tfjsonpath.New("last_migration").AtMapKey("type"), knownvalue.StringExact("quick")),
				},
			},
		},
	})
}

func TestAccVirtualMachine_pinDownThenBack(t *testing.T) {
	dir := t.TempDir()
	vol := vmLab(t, dir, "HVCLUSTER", 50, "O", append(seedLab, labHost{"Y-23-2k8x64", 23, "intel"})...)
	cfg := providerBlock(dir) + vmHCL(vol, "WEB01", vhd(20, "dynamic"), `owner_node = "Y-21-2k8x64"`)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{Config: cfg, ConfigStateChecks: []statecheck.StateCheck{expectNode("Y-21-2k8x64")}},
			{
				// The pin fails: the VM fails over; unchanged configuration,
				// pin down → no diff (a warning).
				PreConfig: func() {
					labDo(t, dir, func(ctx context.Context, e *engine.Engine) error {
						_, err := e.MarkHostDown(ctx, "Y-21-2k8x64", engine.DownByLab)
						return err
					})
				},
				Config: cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectEmptyPlan(),
				}},
				Check: func(s *terraform.State) error {
					if n := s.RootModule().Resources[res].Primary.Attributes["current_node"]; n == "Y-21-2k8x64" {
						return fmt.Errorf("VM still on its failed pin")
					}
					return nil
				},
			},
			{
				// The pin is back: an in-place update migrates it home.
				PreConfig: func() {
					labDo(t, dir, func(ctx context.Context, e *engine.Engine) error {
						_, err := e.MarkHostUp(ctx, "Y-21-2k8x64")
						return err
					})
				},
				Config: cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(res, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(res, tfjsonpath.New("current_node"), knownvalue.StringExact("Y-21-2k8x64")),
				}},
				ConfigStateChecks: []statecheck.StateCheck{expectNode("Y-21-2k8x64")},
			},
		},
	})
}

func TestAccVirtualMachine_planErrors(t *testing.T) {
	dir := t.TempDir()
	vol := vmLab(t, dir, "HVCLUSTER", 50, "O", append(seedLab, labHost{"Y-23-2k8x64", 23, "intel"})...)
	vol2 := labVolume(t, dir, "HVCLUSTER", "P")
	qvol := vmLab(t, dir, "QCLUSTER", 60, "Q", labHost{"Q-1", 31, "intel"}, labHost{"Q-2", 32, "intel"})
	labDo(t, dir, func(ctx context.Context, e *engine.Engine) error {
		if _, err := e.MarkHostDown(ctx, "Y-23-2k8x64", engine.DownByLab); err != nil {
			return err
		}
		if _, err := e.MarkHostDown(ctx, "Q-2", engine.DownByLab); err != nil {
			return err
		}
		_, err := e.CreateVM(ctx, engine.VMSpec{Cluster: "HVCLUSTER", Volume: vol, Name: "DB01", MemoryMB: 1024, ProcessorCount: 1,
			VHD: engine.VHDSpec{SizeGiB: 1, Type: "dynamic"}, OwnerNode: "Y-21-2k8x64", AntiAffinityClass: "web",
			AntiAffinityMode: "required", Migration: "live", State: "off", Failback: engine.FailbackSpec{Mode: "prevent"},
			MaxFailures: 1, FailurePeriodHours: 6})
		return err
	})
	base := func(extra ...string) string {
		return providerBlock(dir) + vmHCL(vol, "WEB01", append([]string{vhd(10, "dynamic")}, extra...)...)
	}
	plan := func(cfg, msg string) resource.TestStep {
		return resource.TestStep{Config: cfg, PlanOnly: true, ExpectError: errRe(msg)}
	}
	quorumCfg := providerBlock(dir) + strings.Replace(vmHCL(qvol, "Q01", vhd(1, "dynamic"), `owner_node = "Q-1"`),
		`"HVCLUSTER"`, `"QCLUSTER"`, 1)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			plan(base(`owner_node = "Y-23-2k8x64"`), `owner_node: VM "WEB01" cannot run on its owner_node "Y-23-2k8x64": down`),
			plan(base(`owner_node = "Y-22-2k8x64"`, `possible_owners = ["Y-21-2k8x64"]`), `owner_node: "Y-22-2k8x64" is not in possible_owners`),
			plan(base(`owner_node = "Y-22-2k8x64"`, `memory_mb = 40000`), `not enough memory: needs 40000 MB`),
			plan(base(`owner_node = "Y-21-2k8x64"`, `anti_affinity_class = "web"`), `required anti-affinity: VM "DB01" of anti_affinity_class "web"`),
			plan(base(`possible_owners = ["Y-23-2k8x64"]`), `possible_owners: no node can run VM "WEB01"`),
			plan(base(`possible_owners = ["Y-21-2k8x64", "Y-99"]`), `possible_owners: "Y-99" is not a node of cluster "HVCLUSTER"; allowed: the cluster's nodes Y-21-2k8x64`),
			plan(quorumCfg, `cluster_id: cluster "QCLUSTER" has lost quorum`),
			// On an existing running VM:
			{Config: base(`owner_node = "Y-22-2k8x64"`)},
			plan(base(`owner_node = "Y-22-2k8x64"`, `memory_mb = 4096`), `VM "WEB01" is running; changing memory_mb needs it off`),
			plan(base(`owner_node = "Y-22-2k8x64"`, vhd(10, "fixed")), `a VHD's type cannot change`),
			plan(base(`owner_node = "Y-22-2k8x64"`, vhd(5, "dynamic")), `a VHD grows, never shrinks`),
			plan(strings.Replace(base(`owner_node = "Y-22-2k8x64"`), vol, vol2, 1), `a VM's storage does not move`),
		},
	})
}

func TestSameModel(t *testing.T) {
	// A model as Read builds it (every field set, as the framework's Get
	// sets them).
	prior := vmModel{NetworkAdapters: types.ListNull(vmAdapterObjType), PreferredOwners: types.ListNull(types.StringType),
		DataDisks: types.ListNull(dataDiskObjType), DVD: types.ObjectNull(dvdAttrTypes), BootOrder: types.ListNull(types.StringType),
		Failback: types.ObjectNull(failbackAttrTypes), Timeouts: timeouts.Value{Object: types.ObjectNull(map[string]attr.Type{
			"create": types.StringType, "update": types.StringType, "delete": types.StringType})}}
	base := vmToModel(engine.VM{VMSpec: engine.VMSpec{Cluster: "HVCLUSTER", Volume: "v", Name: "WEB01", MemoryMB: 1024,
		ProcessorCount: 1, VHD: engine.VHDSpec{SizeGiB: 10, Type: "dynamic"}, State: "running"}, Node: "Y-21-2k8x64"}, prior)
	if again := vmToModel(engine.VM{VMSpec: engine.VMSpec{Cluster: "HVCLUSTER", Volume: "v", Name: "WEB01", MemoryMB: 1024,
		ProcessorCount: 1, VHD: engine.VHDSpec{SizeGiB: 10, Type: "dynamic"}, State: "running"}, Node: "Y-21-2k8x64"}, prior); !sameModel(base, again) {
		t.Fatal("two conversions of one VM differ")
	}
	for _, tc := range []struct {
		name string
		mod  func(*vmModel)
		same bool
	}{
		{"identical", func(*vmModel) {}, true},
		{"string differs", func(m *vmModel) { m.Name = types.StringValue("WEB02") }, false},
		{"null vs unknown", func(m *vmModel) { m.CurrentNode = types.StringUnknown() }, false},
		{"nested value differs", func(m *vmModel) {
			m.VHD = types.ObjectValueMust(vhdAttrTypes, map[string]attr.Value{"size_gib": types.Int64Value(20), "type": types.StringValue("dynamic"),
				"source": types.StringNull(), "clone": types.StringValue("differencing")})
		}, false},
	} {
		m := base
		tc.mod(&m)
		if got := sameModel(base, m); got != tc.same {
			t.Errorf("%s: sameModel = %v, want %v", tc.name, got, tc.same)
		}
	}
}
