package engine

import (
	"encoding/xml"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/placement"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/vhd"
)

// VM run states (VMSpec.State) and statuses (VM.Status).
const (
	VMRunning = "running"
	VMOff     = "off"
	// StatusMigrating: a migration is in progress (or was interrupted and
	// is finished or rolled back by the next call).
	StatusMigrating = "migrating"
	// StatusFailed: the VM should run but cannot (see StatusReason).
	StatusFailed = "failed"
)

// Migration types (VMSpec.Migration, MigrationRecord.Type).
const (
	MigrationLive  = "live"
	MigrationQuick = "quick"
	// MigrationOffline is the move of a VM that is off: only its owner
	// changes.
	MigrationOffline = "offline"
)

// VHD types, failback modes.
const (
	VHDDynamic = "dynamic"
	VHDFixed   = "fixed"

	FailbackPrevent   = "prevent"
	FailbackImmediate = "immediate"
	FailbackWindow    = "window"
)

// VM limits.
const (
	MaxVMNameLen      = 64
	MinVMMemoryMB     = 32
	MaxVMMemoryMB     = 1 << 20 // 1 TiB, Hyper-V 2012's maximum
	MaxVMProcessors   = 64
	MaxVHDSizeGiB     = 2040 // the VHD format's limit
	MaxFailoverPeriod = 24 * 365
)

// VHDSpec is a VM's virtual disk.
type VHDSpec struct {
	SizeGiB int64  `json:"size_gib"`
	Type    string `json:"type"`
	// Source is a template VHD on the VM's volume (a kayo_volume_file,
	// Windows style: templates\base.vhd); "" a blank disk. Boot disk only.
	Source string `json:"source,omitempty"`
	// Clone is how the disk is made from Source: CloneDifferencing (a
	// child recording only its own writes) or CloneCopy (a standalone
	// copy of the template's blocks).
	Clone string `json:"clone,omitempty"`
}

// DVDSpec is a VM's DVD drive: Path is an ISO on the VM's volume (a
// kayo_volume_file, Windows style: isos\tools.iso).
type DVDSpec struct {
	Path string `json:"path"`
}

// Clone modes (VHDSpec.Clone) and boot devices (VMSpec.BootOrder).
const (
	CloneDifferencing = "differencing"
	CloneCopy         = "copy"

	BootVHD = "vhd"
	BootDVD = "dvd"
)

// MaxDataDisks bounds data_disks (Hyper-V 2008: 4 IDE and 4 SCSI
// controllers of 64 disks; the QEMU driver attaches each as a virtio disk).
const MaxDataDisks = 16

// VMAdapter is a VM network adapter; MAC is computed (Hyper-V's
// 00-15-5D prefix, derived from cluster, VM and position).
type VMAdapter struct {
	Switch string `json:"switch"`
	MAC    string `json:"mac,omitempty"`
}

// FailbackSpec is when a VM moves back to its preferred owner after a
// failover.
type FailbackSpec struct {
	Mode            string `json:"mode"`
	WindowStartHour int    `json:"window_start_hour,omitempty"`
	WindowEndHour   int    `json:"window_end_hour,omitempty"`
}

// VMSpec is what a kayo_virtual_machine declares.
type VMSpec struct {
	Cluster        string      `json:"cluster"`
	Volume         string      `json:"volume"`
	Name           string      `json:"name"`
	MemoryMB       int64       `json:"memory_mb"`
	ProcessorCount int         `json:"processor_count"`
	VHD            VHDSpec     `json:"vhd"`
	Adapters       []VMAdapter `json:"network_adapters"`
	// DataDisks are further VHDs beside the boot disk (vms_disks.go).
	DataDisks []VHDSpec `json:"data_disks,omitempty"`
	// DVD is the DVD drive's ISO (nil: no DVD drive).
	DVD *DVDSpec `json:"dvd,omitempty"`
	// BootOrder lists BootVHD and BootDVD; empty: the VHD, then the DVD.
	BootOrder []string `json:"boot_order,omitempty"`
	// OwnerNode pins the VM ("" = the scheduler decides).
	OwnerNode       string   `json:"owner_node,omitempty"`
	PreferredOwners []string `json:"preferred_owners,omitempty"`
	// PossibleOwners limits the nodes; nil means every node.
	PossibleOwners     []string     `json:"possible_owners"`
	AntiAffinityClass  string       `json:"anti_affinity_class,omitempty"`
	AntiAffinityMode   string       `json:"anti_affinity_mode"`
	Migration          string       `json:"migration"`
	State              string       `json:"state"`
	AllowRestart       bool         `json:"allow_restart"`
	Failback           FailbackSpec `json:"failback"`
	MaxFailures        int          `json:"max_failures"`
	FailurePeriodHours int          `json:"failure_period_hours"`
}

// MigrationRecord is the last completed migration (or failover) of a VM.
type MigrationRecord struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	From       string    `json:"from"`
	To         string    `json:"to"`
	DurationMs int64     `json:"duration_ms"`
	DowntimeMs int64     `json:"downtime_ms"`
	Rounds     int       `json:"rounds,omitempty"`
	Token      int64     `json:"token"`
	At         time.Time `json:"at"`
	// ColdBoot says why the guest had to be started anew from its disk
	// after the move ("" it kept running: the move kept its state).
	ColdBoot string `json:"cold_boot,omitempty"`
}

// Holder identifies the process running a multi-step operation, so a
// crashed one can be told from a live one: its host and pid (a dead pid on
// this host is a crashed holder) and a deadline for holders elsewhere.
type Holder struct {
	Host string `json:"host"`
	PID  int    `json:"pid"`
	// Runtime tells apart the runtimes of one process (runtime.go).
	Runtime string    `json:"runtime,omitempty"`
	Expires time.Time `json:"expires"`
}

func (h Holder) String() string { return fmt.Sprintf("%s/%d", h.Host, h.PID) }

// Pending is an operation in progress on a VM: written before its first
// side effect, cleared by its completion commit. The next call that finds
// a pending operation whose holder died finishes it or rolls it back.
type Pending struct {
	ID     string `json:"id"`
	Op     string `json:"op"` // opCreate, opMigrate, opConverge
	Phase  string `json:"phase"`
	Holder Holder `json:"holder"`
	// Migration only.
	Type       string                 `json:"type,omitempty"`
	From       string                 `json:"from,omitempty"`
	To         string                 `json:"to,omitempty"`
	Reason     string                 `json:"reason,omitempty"`
	WasRunning bool                   `json:"was_running,omitempty"`
	Live       *hypervisor.LiveResult `json:"live,omitempty"`
	SaveMs     int64                  `json:"save_ms,omitempty"`
	// Prior is the spec before the change (a rollback restores it);
	// Restart: the VM is shut down for the change; Files: its VHD or
	// configuration file changes.
	Prior     *VMSpec   `json:"prior,omitempty"`
	Restart   bool      `json:"restart,omitempty"`
	Files     bool      `json:"files,omitempty"`
	StartedAt time.Time `json:"started_at"`
}

// Pending operations and migration phases.
const (
	opCreate   = "create"
	opMigrate  = "migrate"
	opConverge = "converge"

	// PhasePrepare: intent committed, capacity reserved on the target;
	// memory is being copied (live: the source pauses at the end) or the
	// state saved (quick). A crash here rolls back: the source resumes.
	// (Earlier versions recorded a "transferred" phase in between; it
	// rolls back the same way.)
	PhasePrepare = "prepare"
	// PhaseSwitched: the transfer is done and the target owns the VM (new
	// token), one commit after the transfer. A crash here rolls forward:
	// the target resumes or restores.
	PhaseSwitched = "switched"
)

// VM is a virtual machine as the cluster database holds it.
type VM struct {
	VMSpec
	// Node is the owner: the node the VM runs on (or would, when off).
	Node string `json:"node"`
	// Token is the fencing token of the ownership: it grows by one with
	// every owner change, in the commit that records it.
	Token        int64  `json:"token"`
	Status       string `json:"status"`
	StatusReason string `json:"status_reason,omitempty"`
	DriveLetter  string `json:"drive_letter"`
	// VHDPath and ConfigPath as nodes see them: O:\WEB01\WEB01.vhd.
	VHDPath       string           `json:"vhd_path"`
	ConfigPath    string           `json:"config_path"`
	LastMigration *MigrationRecord `json:"last_migration,omitempty"`
	Pending       *Pending         `json:"pending,omitempty"`
	// Failures are the times of failovers, for max_failures.
	Failures []time.Time `json:"failures,omitempty"`
	// AdapterAddresses are the guest's addresses by adapter (CIDR; ""
	// none), assigned from the switches' subnets (switches.go).
	AdapterAddresses []string  `json:"adapter_addresses,omitempty"`
	CreatedAt        time.Time `json:"created_at"`
	Revision         int64     `json:"-"`
}

// ID is the VM's import ID, cluster/name.
func (v VM) ID() string { return v.Cluster + "/" + v.Name }

// windowsReserved are names Windows does not allow as file names.
var windowsReserved = []string{"CON", "PRN", "AUX", "NUL",
	"COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9",
	"LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9"}

// CheckVMName checks a VM name: it names a directory and two files on the
// volume, so it is a plain file name: 1–64 letters, digits, '-', '_' and
// '.', starting with a letter or digit, no "..", not a reserved Windows
// device name.
func CheckVMName(name string) error {
	const allowed = "1 to 64 letters, digits, '-', '_' and '.', starting with a letter or digit, without \"..\" " +
		"and not a Windows device name (CON, NUL, COM1, ...)"
	if len(name) < 1 || len(name) > MaxVMNameLen || strings.Contains(name, "..") || strings.HasSuffix(name, ".") {
		return invalid("name", name, allowed)
	}
	for i, r := range name {
		ok := r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if i > 0 {
			ok = ok || r == '-' || r == '_' || r == '.'
		}
		if !ok {
			return invalid("name", name, allowed)
		}
	}
	base, _, _ := strings.Cut(strings.ToUpper(name), ".")
	if slices.Contains(windowsReserved, base) {
		return invalid("name", name, allowed)
	}
	return nil
}

// VMPaths are where a VM's files live.
type VMPaths struct {
	// Windows paths as nodes see them: O:\WEB01\WEB01.vhd.
	VHD, Config, State string
	// Paths inside the Kayo FS volume: WEB01/WEB01.vhd.
	Dir, VolVHD, VolConfig, VolState string
}

// PathsFor computes and validates the paths of VM name on the volume at
// drive letter: the VHD, its configuration file beside it, and the saved
// state of a quick migration. A name that could leave its directory (or
// the volume) is refused.
func PathsFor(letter, name string) (VMPaths, error) {
	if err := CheckVMName(name); err != nil {
		return VMPaths{}, err
	}
	if len(letter) != 1 || letter[0] < 'D' || letter[0] > 'Z' {
		return VMPaths{}, invalid("volume_id", letter, "a volume with a drive letter D to Z")
	}
	p := VMPaths{
		VHD:       fmt.Sprintf(`%s:\%s\%s.vhd`, letter, name, name),
		Config:    fmt.Sprintf(`%s:\%s\%s.xml`, letter, name, name),
		State:     fmt.Sprintf(`%s:\%s\%s.vsv`, letter, name, name),
		Dir:       name,
		VolVHD:    name + "/" + name + ".vhd",
		VolConfig: name + "/" + name + ".xml",
		VolState:  name + "/" + name + ".vsv",
	}
	for _, vp := range []string{p.Dir, p.VolVHD, p.VolConfig, p.VolState} {
		for _, el := range strings.Split(vp, "/") {
			if el == "" || el == "." || el == ".." || strings.ContainsAny(el, `\:`) {
				return VMPaths{}, invalid("name", name, "a name that stays inside its directory on the volume")
			}
		}
	}
	return p, nil
}

// CheckVMSpec checks what is known without the database. Errors are
// InputErrors naming the attribute.
func CheckVMSpec(s VMSpec) error {
	if err := CheckVMName(s.Name); err != nil {
		return err
	}
	if s.Cluster == "" {
		return invalid("cluster_id", s.Cluster, "the name of a cluster")
	}
	if s.Volume == "" {
		return invalid("volume_id", s.Volume, "the UUID of a kayo_shared_volume of the cluster")
	}
	if s.MemoryMB < MinVMMemoryMB || s.MemoryMB > MaxVMMemoryMB {
		return invalid("memory_mb", fmt.Sprint(s.MemoryMB), fmt.Sprintf("%d to %d", MinVMMemoryMB, MaxVMMemoryMB))
	}
	if s.ProcessorCount < 1 || s.ProcessorCount > MaxVMProcessors {
		return invalid("processor_count", fmt.Sprint(s.ProcessorCount), fmt.Sprintf("1 to %d", MaxVMProcessors))
	}
	if s.VHD.SizeGiB < 1 || s.VHD.SizeGiB > MaxVHDSizeGiB {
		return invalid("vhd.size_gib", fmt.Sprint(s.VHD.SizeGiB), fmt.Sprintf("1 to %d (the VHD format's limit)", MaxVHDSizeGiB))
	}
	if s.VHD.Type != VHDDynamic && s.VHD.Type != VHDFixed {
		return invalid("vhd.type", s.VHD.Type, `"dynamic" or "fixed"`)
	}
	if err := checkDiskSpecs(s); err != nil {
		return err
	}
	for i, a := range s.Adapters {
		if strings.TrimSpace(a.Switch) == "" {
			return invalid(fmt.Sprintf("network_adapters[%d].switch", i), a.Switch, "the name of a virtual switch")
		}
	}
	if len(s.Adapters) > 8 {
		return invalid("network_adapters", fmt.Sprint(len(s.Adapters)), "at most 8 adapters (Hyper-V's limit)")
	}
	switch s.AntiAffinityMode {
	case placement.ModePreferred, placement.ModeRequired:
	default:
		return invalid("anti_affinity_mode", s.AntiAffinityMode, `"preferred" or "required"`)
	}
	if s.AntiAffinityMode == placement.ModeRequired && s.AntiAffinityClass == "" {
		return &InputError{Attribute: "anti_affinity_mode", Value: s.AntiAffinityMode,
			Detail: `"required" needs an anti_affinity_class naming the VMs to keep apart`}
	}
	if s.Migration != MigrationLive && s.Migration != MigrationQuick {
		return invalid("migration", s.Migration, `"live" or "quick"`)
	}
	if s.State != VMRunning && s.State != VMOff {
		return invalid("state", s.State, `"running" or "off"`)
	}
	switch s.Failback.Mode {
	case FailbackPrevent, FailbackImmediate:
	case FailbackWindow:
		for attr, h := range map[string]int{"failback.window_start_hour": s.Failback.WindowStartHour, "failback.window_end_hour": s.Failback.WindowEndHour} {
			if h < 0 || h > 23 {
				return invalid(attr, fmt.Sprint(h), "0 to 23")
			}
		}
	default:
		return invalid("failback.mode", s.Failback.Mode, `"prevent", "immediate" or "window"`)
	}
	if s.MaxFailures < 0 || s.MaxFailures > 1000 {
		return invalid("max_failures", fmt.Sprint(s.MaxFailures), "0 to 1000")
	}
	if s.FailurePeriodHours < 1 || s.FailurePeriodHours > MaxFailoverPeriod {
		return invalid("failure_period_hours", fmt.Sprint(s.FailurePeriodHours), fmt.Sprintf("1 to %d", MaxFailoverPeriod))
	}
	if s.OwnerNode != "" && s.PossibleOwners != nil && !slices.Contains(s.PossibleOwners, s.OwnerNode) {
		return &InputError{Attribute: "owner_node", Value: s.OwnerNode,
			Detail: fmt.Sprintf("%q is not in possible_owners [%s]; pin the VM to a possible owner", s.OwnerNode, strings.Join(s.PossibleOwners, ", "))}
	}
	return nil
}

// NormalizeVMSpec sorts possible owners and computes adapter MACs.
func NormalizeVMSpec(s VMSpec) VMSpec {
	if s.PossibleOwners != nil {
		s.PossibleOwners = slices.Clone(s.PossibleOwners)
		slices.Sort(s.PossibleOwners)
		s.PossibleOwners = slices.Compact(s.PossibleOwners)
	}
	s.PreferredOwners = slices.Clone(s.PreferredOwners)
	s.Adapters = slices.Clone(s.Adapters)
	for i := range s.Adapters {
		s.Adapters[i].MAC = MACAddress(s.Cluster, s.Name, i)
	}
	normalizeDisks(&s) // vms_disks.go
	return s
}

// MACAddress is the MAC of a VM's i-th adapter: Hyper-V's 00-15-5D prefix
// and three bytes derived from cluster, VM name and position, so a plan
// can show it and it never changes.
func MACAddress(cluster, name string, i int) string {
	h := fnv.New32a()
	_, _ = fmt.Fprintf(h, "%s/%s/%d", cluster, name, i)
	x := h.Sum32()
	return fmt.Sprintf("00-15-5D-%02X-%02X-%02X", byte(x>>16), byte(x>>8), byte(x))
}

func vhdType(t string) vhd.DiskType {
	if t == VHDFixed {
		return vhd.Fixed
	}
	return vhd.Dynamic
}

func (v VM) hvVM() hypervisor.VM {
	out := hypervisor.VM{Name: v.Name, MemoryMB: v.MemoryMB, Processors: v.ProcessorCount, VHDPath: v.VHDPath, ConfigPath: v.ConfigPath}
	for i, a := range v.Adapters {
		ad := hypervisor.Adapter{Switch: a.Switch, MAC: a.MAC}
		if i < len(v.AdapterAddresses) {
			ad.Address = v.AdapterAddresses[i]
		}
		out.Adapters = append(out.Adapters, ad)
	}
	return out
}

// vmConfigXML is the configuration file beside the VHD, in the spirit of
// Hyper-V's (Windows Server 2008) XML virtual machine configuration.
type vmConfigXML struct {
	XMLName    xml.Name `xml:"configuration"`
	Name       string   `xml:"properties>name"`
	ClusterID  string   `xml:"properties>cluster"`
	Creator    string   `xml:"properties>creator"`
	MemoryMB   int64    `xml:"settings>memory>bank>size"`
	Processors int      `xml:"settings>processors>count"`
	Drive      struct {
		Path   string `xml:"pathname"`
		Type   string `xml:"type"`
		Kind   string `xml:"format"`
		Size   int64  `xml:"size_gib"`
		Parent string `xml:"parent,omitempty"`
	} `xml:"controllers>ide>drive"`
	DataDrives []configDrive `xml:"controllers>scsi>drive,omitempty"`
	DVD        *configDrive  `xml:"controllers>dvd>drive,omitempty"`
	BootOrder  []string      `xml:"settings>boot>device,omitempty"`
	NICs       []struct {
		Switch string `xml:"switch"`
		MAC    string `xml:"address"`
	} `xml:"nics>ethernet"`
	Automatic struct {
		StartAction string `xml:"start_action"`
	} `xml:"settings>global"`
}

type configDrive struct {
	Path string `xml:"pathname"`
	Type string `xml:"type"`
	Kind string `xml:"format,omitempty"`
	Size int64  `xml:"size_gib,omitempty"`
}

// ConfigXML renders the VM's configuration file.
func (v VM) ConfigXML() []byte {
	c := vmConfigXML{Name: v.Name, ClusterID: v.Cluster, Creator: "kayo", MemoryMB: v.MemoryMB, Processors: v.ProcessorCount}
	c.Drive.Path, c.Drive.Type, c.Drive.Kind, c.Drive.Size = v.VHDPath, "VHD", v.VHD.Type, v.VHD.SizeGiB
	c.Drive.Parent = v.VHD.Source
	if v.VHD.Source != "" && v.VHD.Clone == CloneDifferencing {
		c.Drive.Kind = "differencing"
	}
	for i, d := range v.DataDisks {
		c.DataDrives = append(c.DataDrives, configDrive{Path: v.DataDiskPath(i), Type: "VHD", Kind: d.Type, Size: d.SizeGiB})
	}
	if v.DVD != nil {
		c.DVD = &configDrive{Path: v.DVD.Path, Type: "ISO"}
	}
	c.BootOrder = v.BootOrder
	for _, a := range v.Adapters {
		c.NICs = append(c.NICs, struct {
			Switch string `xml:"switch"`
			MAC    string `xml:"address"`
		}{a.Switch, a.MAC})
	}
	c.Automatic.StartAction = "cluster"
	b, _ := xml.MarshalIndent(c, "", "  ")
	return append(append([]byte(xml.Header), b...), '\n')
}
