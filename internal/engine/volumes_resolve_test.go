package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/hostfacts"
)

// Exactly one way of naming the LUN, each well formed; errors name the
// attribute, the value and what is allowed.
func TestLUNNamingErrors(t *testing.T) {
	base := seedVolume()
	mod := func(f func(*VolumeSpec)) VolumeSpec { s := base; s.LUN = ""; f(&s); return s }
	cases := []struct {
		name, attr, want string
		s                VolumeSpec
	}{
		{"none", "lun", "exactly one of lun", mod(func(*VolumeSpec) {})},
		{"lun and device_id", "device_id", `lun = "lun0" and device_id = "wwn-0x1" name the LUN more than once`,
			mod(func(s *VolumeSpec) { s.LUN, s.DeviceID = "lun0", "wwn-0x1" })},
		{"device_id and device_paths", "device_id", "name the LUN more than once",
			mod(func(s *VolumeSpec) { s.DeviceID, s.DevicePaths = "wwn-0x1", map[string]string{y21: "/dev/sdb"} })},
		{"device_id with a slash", "device_id", "a name under /dev/disk/by-id", mod(func(s *VolumeSpec) { s.DeviceID = "../sdb" })},
		{"device_paths empty", "device_paths", "one absolute device path per node", mod(func(s *VolumeSpec) { s.DevicePaths = map[string]string{} })},
		{"device_paths relative", "device_paths", `device_paths["Y-21-2k8x64"] = "sdb" is not an absolute path`,
			mod(func(s *VolumeSpec) { s.DevicePaths = map[string]string{y21: "sdb"} })},
	}
	for _, c := range cases {
		err := CheckVolumeSpec(c.s)
		if !isAttr(err, c.attr) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want a %s error containing %q", c.name, err, c.attr, c.want)
		}
	}
	for _, ok := range []VolumeSpec{mod(func(s *VolumeSpec) { s.DeviceID = "wwn-0x5000c500a1b2c3d4" }),
		mod(func(s *VolumeSpec) { s.DevicePaths = map[string]string{y21: "/dev/sdb", y22: "/dev/sdc"} }), base} {
		if err := CheckVolumeSpec(ok); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
}

// Each way resolves to the node's own path, opening nothing.
func TestResolveLUN(t *testing.T) {
	r := LUNRoots{DataDir: "/var/lib/kayo", ByID: "/host/by-id"}
	paths := VolumeSpec{DevicePaths: map[string]string{y21: "/dev/sdb", y22: "/dev/sdc"}}
	for _, c := range []struct {
		s          VolumeSpec
		node, want string
	}{
		{VolumeSpec{LUN: "lun0"}, y21, "/var/lib/kayo/san/lun0.img"},
		{VolumeSpec{LUN: "/dev/sdz"}, y21, "/dev/sdz"},
		{VolumeSpec{DeviceID: "wwn-0x1"}, y22, "/host/by-id/wwn-0x1"},
		{VolumeSpec{DeviceID: "wwn-0x1"}, y22, "/host/by-id/wwn-0x1"},
		{paths, y21, "/dev/sdb"},
		{paths, y22, "/dev/sdc"},
	} {
		if got, err := ResolveLUN(c.s, c.node, r); err != nil || got != c.want {
			t.Errorf("ResolveLUN(%+v, %s) = %q, %v; want %q", c.s, c.node, got, err, c.want)
		}
	}
	if got, _ := ResolveLUN(VolumeSpec{DeviceID: "wwn-0x1"}, y21, LUNRoots{}); got != "/dev/disk/by-id/wwn-0x1" {
		t.Errorf("default by-id root: %q", got)
	}
	if _, err := ResolveLUN(paths, "Y-23", r); !isAttr(err, "device_paths") || !strings.Contains(err.Error(), `no path for node "Y-23"`) {
		t.Errorf("a node device_paths does not name: %v", err)
	}
	if _, err := ResolveLUN(VolumeSpec{LUN: "lun0"}, y21, LUNRoots{}); !isAttr(err, "lun") {
		t.Errorf("embedded LUN without a data dir: %v", err)
	}
}

// A volume whose LUN one node does not see (#18): when the nodes' agents
// report their LUNs, creating it fails naming that node and the LUN, at
// plan and at apply, and nothing is formatted; once every node's report
// lists it, it is created and each node resolves it its own way.
func TestVolumeLUNUnseenByNode(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	byID := filepath.Join(dir, "by-id")
	e, err := openT(Config{DataDir: filepath.Join(dir, "data"), ByIDDir: byID, Clock: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	mustHosts(t, e, seedSpec(y21, 21), seedSpec(y22, 22))
	if _, err := e.CreateCluster(ctx, seedCluster("HVCLUSTER", y21, y22)); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "shared.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(2 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.MkdirAll(byID, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(img, filepath.Join(byID, "wwn-0x600140512345678")); err != nil {
		t.Fatal(err)
	}
	before := sha(t, img)
	report := func(node string, luns ...hostfacts.LUN) {
		t.Helper()
		if err := e.ReportHost(ctx, node, hostfacts.Report{Version: hostfacts.ReportVersion, ReportedAt: fixedNow, ProcessorVendor: "intel",
			ProcessorModel: "Xeon E5440", ProcessorCores: 8, MemoryMB: 32768, LUNs: append([]hostfacts.LUN{}, luns...)}); err != nil {
			t.Fatal(err)
		}
	}
	seen := hostfacts.LUN{Path: "/dev/sdb", SizeBytes: 2 << 30, Identity: "wwn-0x600140512345678", IDs: []string{"wwn-0x600140512345678"}}
	other := hostfacts.LUN{Path: "/dev/sdb", SizeBytes: 2 << 30, Identity: "wwn-0x5000000000000001"}
	byPath := hostfacts.LUN{Path: img, SizeBytes: 2 << 30}

	byIDSpec := VolumeSpec{Cluster: "HVCLUSTER", DeviceID: "wwn-0x600140512345678", SizeGiB: 1, DriveLetter: "O",
		BlockSize: 4096, NodeSlots: 4, FileBacked: true}
	pathsSpec := byIDSpec
	pathsSpec.DeviceID, pathsSpec.DevicePaths = "", map[string]string{y21: img, y22: img}

	// Without reports, a device_id this host cannot resolve is an error
	// naming it and where it was looked for.
	absent := byIDSpec
	absent.DeviceID = "wwn-0xabsent"
	if _, err := e.CreateVolume(ctx, absent); !isAttr(err, "device_id") ||
		!strings.Contains(err.Error(), `"wwn-0xabsent" (`+filepath.Join(byID, "wwn-0xabsent")+` on this host): no such file or directory`) {
		t.Fatalf("an unresolvable device_id: %v", err)
	}
	// Y-21 reports, Y-22 does not: whether Y-22 sees it is unknown.
	report(y21, seen, byPath)
	for what, err := range map[string]error{"plan": e.CheckVolumePlan(ctx, "", byIDSpec), "apply": errOnly(e.CreateVolume(ctx, byIDSpec))} {
		if !isAttr(err, "device_id") || !strings.Contains(err.Error(), `node "Y-22-2k8x64" of cluster "HVCLUSTER" has no fresh report`) {
			t.Fatalf("%s with Y-22 not reporting: %v", what, err)
		}
	}
	// Y-22 reports another LUN only.
	report(y22, other)
	for what, err := range map[string]error{
		"plan by id": e.CheckVolumePlan(ctx, "", byIDSpec), "apply by id": errOnly(e.CreateVolume(ctx, byIDSpec)),
		"plan by paths": e.CheckVolumePlan(ctx, "", pathsSpec), "apply by paths": errOnly(e.CreateVolume(ctx, pathsSpec))} {
		if err == nil || !strings.Contains(err.Error(), `node "Y-22-2k8x64" of cluster "HVCLUSTER" does not see`) ||
			!strings.Contains(err.Error(), "nothing was formatted") {
			t.Fatalf("%s with Y-22 not seeing the LUN: %v", what, err)
		}
		if strings.Contains(what, "id") && !strings.Contains(err.Error(), `device_id "wwn-0x600140512345678"`) {
			t.Fatalf("%s: %v does not name the identity", what, err)
		}
	}
	if sha(t, img) != before {
		t.Fatal("the refused LUN was written")
	}
	if _, err := getJSON(ctx, e.st, volumeIntentKey("HVCLUSTER", "O"), &volumeIntent{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused creation left an intent: %v", err)
	}
	// device_paths must name exactly the cluster's nodes.
	bad := pathsSpec
	bad.DevicePaths = map[string]string{y21: img, y22: img, "Y-23": img}
	if err := e.CheckVolumePlan(ctx, "", bad); !isAttr(err, "device_paths") || !strings.Contains(err.Error(), `names "Y-23", which is not a node`) {
		t.Fatalf("device_paths with a stranger: %v", err)
	}
	bad.DevicePaths = map[string]string{y21: img}
	if _, err := e.CreateVolume(ctx, bad); !isAttr(err, "device_paths") || !strings.Contains(err.Error(), `no path for node "Y-22-2k8x64"`) {
		t.Fatalf("device_paths missing a node: %v", err)
	}
	// Both see it: created, through this host's by-id link (beside a
	// quorum without a witness disk: its empty witness is not this LUN).
	report(y22, other, seen)
	if _, err := e.CreateQuorum(ctx, QuorumSpec{Cluster: "HVCLUSTER", Type: "node_majority"}); err != nil {
		t.Fatal(err)
	}
	v, err := e.CreateVolume(ctx, byIDSpec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.GetVolume(ctx, v.ID)
	if err != nil || got.DeviceID != byIDSpec.DeviceID || got.Device != filepath.Join(byID, byIDSpec.DeviceID) || len(got.Mounts) != 2 {
		t.Fatalf("created by device_id: %+v, %v", got, err)
	}
	if err := e.WithVolume(ctx, v.ID, y22, func(fv *kayofs.Volume) error { return nil }); err != nil {
		t.Fatalf("a node's mount through device_id: %v", err)
	}
}
