package hostfacts

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const twoCoreHT = `processor	: 0
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) CPU E5440 @ 2.83GHz
physical id	: 0
core id		: 0
flags		: sse2 fpu sse4_1 pni

processor	: 1
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) CPU E5440 @ 2.83GHz
physical id	: 0
core id		: 0
flags		: sse2 fpu sse4_1 pni

processor	: 2
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) CPU E5440 @ 2.83GHz
physical id	: 0
core id		: 1
flags		: sse2 fpu sse4_1 pni
`

func TestParseCPUInfo(t *testing.T) {
	c, err := ParseCPUInfo(twoCoreHT)
	if err != nil {
		t.Fatal(err)
	}
	want := CPU{Vendor: "intel", Model: "Intel(R) Xeon(R) CPU E5440 @ 2.83GHz", Cores: 2, Flags: []string{"fpu", "pni", "sse2", "sse4_1"}}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("ParseCPUInfo = %+v, want %+v (hyper-threads count once)", c, want)
	}
	// No topology lines (some VMs): logical processors count.
	c, err = ParseCPUInfo("processor : 0\nvendor_id : AuthenticAMD\n\nprocessor : 1\nvendor_id : AuthenticAMD\n")
	if err != nil || c.Cores != 2 || c.Vendor != "amd" {
		t.Errorf("no topology: %+v %v, want 2 cores of amd", c, err)
	}
	if _, err := ParseCPUInfo("garbage"); err != ErrNoCPUInfo {
		t.Errorf("garbage: %v, want ErrNoCPUInfo", err)
	}
}

func TestParseMemInfoAndQEMUVersion(t *testing.T) {
	if mb, err := ParseMemInfo("MemTotal:       32842164 kB\nMemFree: 1 kB\n"); err != nil || mb != 32072 {
		t.Errorf("ParseMemInfo = %d %v, want 32072", mb, err)
	}
	for _, bad := range []string{"", "MemTotal: lots kB", "MemTotal: 12 MB"} {
		if _, err := ParseMemInfo(bad); err == nil {
			t.Errorf("ParseMemInfo(%q) succeeded", bad)
		}
	}
	v, err := ParseQEMUVersion("QEMU emulator version 7.2.15 (Debian 1:7.2+dfsg-7+deb12u13)\nCopyright (c) 2003-2022\n")
	if err != nil || v != "7.2.15" {
		t.Errorf("ParseQEMUVersion = %q %v", v, err)
	}
	if _, err := ParseQEMUVersion("bash: not found"); err == nil || !strings.Contains(err.Error(), "no QEMU version") {
		t.Errorf("ParseQEMUVersion of garbage: %v", err)
	}
}

// Collect on a fake /proc and a missing KVM device: the facts come from
// the files, the accelerator is TCG.
func TestCollectFromFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cpuinfo"), []byte(twoCoreHT), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "meminfo"), []byte("MemTotal: 2097152 kB\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	r, err := Collect(context.Background(), Options{Proc: dir, KVM: filepath.Join(dir, "kvm"), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if r.ProcessorVendor != "intel" || r.ProcessorCores != 2 || r.MemoryMB != 2048 || !r.ReportedAt.Equal(now) {
		t.Errorf("Collect = %+v", r)
	}
	if r.Hypervisor != nil && r.Hypervisor.Accel != "tcg" {
		t.Errorf("no KVM device: accel %q, want tcg", r.Hypervisor.Accel)
	}
	if _, err := Collect(context.Background(), Options{Proc: filepath.Join(dir, "missing"), QEMU: "-"}); err == nil {
		t.Error("Collect without cpuinfo succeeded")
	}
}
