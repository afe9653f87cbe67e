// Package hostfacts is what a node agent reports of its machine: processor,
// memory, network adapters and the hypervisor it can run, read from
// /proc, the network interfaces and QEMU itself. The parsers are pure
// functions of the files' text; Collect does the reading.
package hostfacts

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Report is one host's facts, in the JSON names of kayo_host.reported.
type Report struct {
	Version         int         `json:"version"` // ReportVersion (check.go)
	ProcessorVendor string      `json:"processor_vendor"`
	ProcessorModel  string      `json:"processor_model"`
	ProcessorCores  int         `json:"processor_cores"`
	CPUFlags        []string    `json:"cpu_flags"`
	MemoryMB        int64       `json:"memory_mb"`
	Adapters        []Adapter   `json:"network_adapters"`
	Hypervisor      *Hypervisor `json:"hypervisor,omitempty"`
	ReportedAt      time.Time   `json:"reported_at"`

	// LUNs (luns.go); nil from an agent that does not list them.
	LUNs []LUN `json:"luns"`
}

// Adapter is one network interface with its addresses (CIDR notation).
type Adapter struct {
	Name      string   `json:"name"`
	MAC       string   `json:"mac"`
	Addresses []string `json:"addresses"`
	Up        bool     `json:"up"`
}

// Hypervisor is what the host can run guests with.
type Hypervisor struct {
	Name    string `json:"name"`    // qemu
	Version string `json:"version"` // e.g. 7.2.15
	Accel   string `json:"accel"`   // kvm | tcg
}

// CPU is /proc/cpuinfo digested.
type CPU struct {
	Vendor string // intel | amd | the raw vendor_id otherwise
	Model  string
	Cores  int // physical cores (distinct physical id/core id pairs), else logical processors
	Flags  []string
}

// ErrNoCPUInfo: the text holds no processor entry.
var ErrNoCPUInfo = errors.New("hostfacts: no processor in cpuinfo")

// ParseCPUInfo reads the text of /proc/cpuinfo (x86 layout).
func ParseCPUInfo(text string) (CPU, error) {
	var c CPU
	cores := map[string]bool{}
	procs := 0
	var phys, core string
	flush := func() {
		if phys != "" || core != "" {
			cores[phys+"/"+core] = true
		}
		phys, core = "", ""
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			flush()
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "processor":
			procs++
		case "vendor_id":
			c.Vendor = NormVendor(v)
		case "model name":
			c.Model = v
		case "physical id":
			phys = v
		case "core id":
			core = v
		case "flags":
			if c.Flags == nil {
				c.Flags = strings.Fields(v)
				sort.Strings(c.Flags)
			}
		}
	}
	flush()
	if procs == 0 {
		return CPU{}, ErrNoCPUInfo
	}
	c.Cores = len(cores)
	if c.Cores == 0 {
		c.Cores = procs
	}
	return c, nil
}

// NormVendor maps cpuinfo's vendor_id to kayo_host's processor_vendor.
func NormVendor(id string) string {
	switch id {
	case "GenuineIntel":
		return "intel"
	case "AuthenticAMD":
		return "amd"
	}
	return strings.ToLower(id)
}

// ParseMemInfo returns MemTotal of /proc/meminfo's text in MiB.
func ParseMemInfo(text string) (int64, error) {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("hostfacts: meminfo MemTotal %q: want \"<n> kB\"", strings.TrimSpace(rest))
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("hostfacts: meminfo MemTotal: %w", err)
			}
			return kb / 1024, nil
		}
	}
	return 0, errors.New("hostfacts: meminfo has no MemTotal")
}

var qemuVersion = regexp.MustCompile(`QEMU emulator version ([0-9][0-9.]*)`)

// ParseQEMUVersion reads `qemu-system-x86_64 --version` output.
func ParseQEMUVersion(out string) (string, error) {
	m := qemuVersion.FindStringSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("hostfacts: no QEMU version in %q", strings.TrimSpace(out))
	}
	return m[1], nil
}

// Options say where Collect looks; the zero value reads this machine.
type Options struct {
	Proc string // default /proc
	QEMU string // QEMU binary; default qemu-system-x86_64 on PATH; "-" for none
	KVM  string // default /dev/kvm
	Now  func() time.Time
}

// Collect reads this machine's facts. A missing QEMU leaves Hypervisor
// nil (the host cannot run the qemu driver); any other failure is an error.
func Collect(ctx context.Context, o Options) (Report, error) {
	if o.Proc == "" {
		o.Proc = "/proc"
	}
	if o.KVM == "" {
		o.KVM = "/dev/kvm"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var r Report
	b, err := os.ReadFile(o.Proc + "/cpuinfo")
	if err != nil {
		return r, err
	}
	cpu, err := ParseCPUInfo(string(b))
	if err != nil {
		return r, err
	}
	r.ProcessorVendor, r.ProcessorModel, r.ProcessorCores, r.CPUFlags = cpu.Vendor, cpu.Model, cpu.Cores, cpu.Flags
	if b, err = os.ReadFile(o.Proc + "/meminfo"); err != nil {
		return r, err
	}
	if r.MemoryMB, err = ParseMemInfo(string(b)); err != nil {
		return r, err
	}
	if r.Adapters, err = adapters(); err != nil {
		return r, err
	}
	if o.QEMU != "-" {
		r.Hypervisor = hypervisor(ctx, o.QEMU, o.KVM)
	}
	r.ReportedAt = o.Now().UTC()
	return r, nil
}

func adapters() ([]Adapter, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []Adapter
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 {
			continue
		}
		a := Adapter{Name: i.Name, MAC: i.HardwareAddr.String(), Up: i.Flags&net.FlagUp != 0, Addresses: []string{}}
		addrs, err := i.Addrs()
		if err != nil {
			return nil, err
		}
		for _, ad := range addrs {
			a.Addresses = append(a.Addresses, ad.String())
		}
		out = append(out, a)
	}
	return out, nil
}

func hypervisor(ctx context.Context, bin, kvm string) *Hypervisor {
	if bin == "" {
		bin = "qemu-system-x86_64"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return nil
	}
	v, err := ParseQEMUVersion(string(out))
	if err != nil {
		return nil
	}
	return &Hypervisor{Name: "qemu", Version: v, Accel: Accel(kvm)}
}

// Accel is "kvm" when the KVM device opens read-write, else "tcg".
func Accel(dev string) string {
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return "tcg"
	}
	_ = f.Close()
	return "kvm"
}
