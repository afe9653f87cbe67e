package validate

import (
	"strings"
	"testing"
)

const volO = "6f1c2a9e-0000-4000-8000-000000000001"

// storageOK: both seed nodes saw volume O:, leased it, wrote their blocks
// and read each other's.
func storageOK() *StorageInput {
	r := func(other string) StorageResult {
		return StorageResult{Volume: volO, Path: "/dev/disk/by-id/wwn-0x1", Seen: true, UUID: volO, SizeBytes: 2 << 30,
			FSBytes: 1 << 30, Leased: true, Wrote: true, ReadFrom: []string{other}}
	}
	return &StorageInput{Volumes: []StorageVolume{{ID: volO, Letter: "O", LUN: `device_id "wwn-0x1"`}},
		Probes: map[string][]StorageResult{y21: {r(y22)}, y22: {r(y21)}}}
}

func TestStorageFromProbes(t *testing.T) {
	in := seed()
	in.Storage = storageOK()
	rep := Run(in)
	for _, name := range []string{TestSharedStorage, TestDiskAccess} {
		if x := find(t, rep, name); x.Result != Passed || x.Source != SourceProbed || !strings.Contains(x.Message, "volume O:") {
			t.Errorf("all probes good: %+v", x)
		}
	}
	// A host that does not see the LUN fails the Storage test naming it.
	in.Storage = storageOK()
	in.Storage.Probes[y22][0] = StorageResult{Volume: volO, Path: "/dev/disk/by-id/wwn-0x1",
		Error: "LUN /dev/disk/by-id/wwn-0x1 cannot be opened here: no such file or directory"}
	rep = Run(in)
	x := find(t, rep, TestSharedStorage)
	if x.Result != Failed || !strings.Contains(x.Message, `node "Y-22-2k8x64" does not see the LUN of volume O: (device_id "wwn-0x1"`) ||
		strings.Contains(x.Message, `"Y-21-2k8x64"`) {
		t.Errorf("Y-22 does not see the LUN: %+v", x)
	}
	if x := find(t, rep, TestDiskAccess); x.Result != Failed || !strings.Contains(x.Message, `node "Y-22-2k8x64" cannot access volume O:`) {
		t.Errorf("Y-22 does not see the LUN, disk access: %+v", x)
	}
	// Another volume on the path, a size that differs, a lease refused.
	for _, c := range []struct {
		name, test, want string
		mod              func(*StorageResult)
	}{
		{"wrong volume", TestSharedStorage, `node "Y-22-2k8x64" finds at /dev/disk/by-id/wwn-0x1, the LUN of volume O:`,
			func(r *StorageResult) {
				r.UUID, r.Leased, r.Wrote, r.Error = "other", false, false, "holds Kayo FS volume other"
			}},
		{"size", TestSharedStorage, `differs in size across nodes: 2147483648 bytes on "Y-21-2k8x64" and 3221225472 bytes on "Y-22-2k8x64"`,
			func(r *StorageResult) { r.SizeBytes = 3 << 30 }},
		{"lease", TestDiskAccess, `node "Y-22-2k8x64" could not take a lease on the LUN of volume O: (no free host lease)`,
			func(r *StorageResult) {
				r.Leased, r.Wrote, r.ReadFrom, r.Error = false, false, nil, "no free host lease"
			}},
	} {
		in.Storage = storageOK()
		c.mod(&in.Storage.Probes[y22][0])
		if x := find(t, Run(in), c.test); x.Result != Failed || !strings.Contains(x.Message, c.want) {
			t.Errorf("%s: %+v, want failed with %q", c.name, x, c.want)
		}
	}
	// Y-21 has not read Y-22's block yet, and a node not probing: warnings, never a pass.
	in.Storage = storageOK()
	in.Storage.Probes[y21][0].ReadFrom = nil
	if x := find(t, Run(in), TestDiskAccess); x.Result != Warning || !strings.Contains(x.Message, `node "Y-21-2k8x64" has not yet read the block of "Y-22-2k8x64"`) {
		t.Errorf("a block not read yet: %+v", x)
	}
	// A format-version-1 volume cannot be leased or stamped: a warning
	// saying so, neither a pass nor a failure.
	in.Storage = storageOK()
	in.Storage.Probes[y22][0] = StorageResult{Volume: volO, Seen: true, UUID: volO, SizeBytes: 2 << 30, FSBytes: 1 << 30, OldFormat: true,
		Error: "volume format version 1 has no lease or validation area"}
	if x := find(t, Run(in), TestDiskAccess); x.Result != Warning || !strings.Contains(x.Message, `node "Y-22-2k8x64" cannot test its access to volume O: (volume format version 1`) {
		t.Errorf("a version-1 volume: %+v", x)
	}
	in.Storage = storageOK()
	delete(in.Storage.Probes, y22)
	for _, name := range []string{TestSharedStorage, TestDiskAccess} {
		if x := find(t, Run(in), name); x.Result != Warning || !strings.Contains(x.Message, `"Y-22-2k8x64" reports no storage probes`) {
			t.Errorf("%s with Y-22 not probing: %+v", name, x)
		}
	}
	// Without probes the test is the embedded SAN's, from declared facts.
	in.Storage = nil
	if x := find(t, Run(in), TestSharedStorage); x.Source != SourceDeclared {
		t.Errorf("no probes: %+v", x)
	}
}
