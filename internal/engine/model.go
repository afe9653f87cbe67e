package engine

import (
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/validate"
)

// Host states.
const (
	HostUp          = "up"
	HostDown        = "down"
	HostMaintenance = "maintenance"
)

// Adapter is a host network adapter.
type Adapter struct {
	Name    string `json:"name"`
	Network string `json:"network"`
	Address string `json:"address"`
}

// HostSpec is what a user declares about a host.
type HostSpec struct {
	Name            string    `json:"name"`
	Address         string    `json:"address"`
	OSEdition       string    `json:"os_edition"`
	ProcessorVendor string    `json:"processor_vendor"`
	ProcessorModel  string    `json:"processor_model"`
	ProcessorCores  int       `json:"processor_cores"`
	MemoryMB        int64     `json:"memory_mb"`
	Features        []string  `json:"features"`
	Adapters        []Adapter `json:"network_adapters"`
	Maintenance     bool      `json:"maintenance"`
	// FromAgent are the hardware facts (AgentFacts) the configuration
	// leaves out: their values above are the host agent's report's
	// (hosts_facts.go), not declared.
	FromAgent []string `json:"from_agent,omitempty"`
}

// Host is a registered host as the cluster database holds it.
type Host struct {
	HostSpec
	// Cluster is the cluster the host is a node of, or "".
	Cluster string `json:"cluster,omitempty"`
	// Down is set by failure detection (or the lab) when the node is silent.
	Down bool `json:"down,omitempty"`
	// DownReason says who declared it down: DownByLab (kayoctl host fail)
	// or DownByHeartbeat (silent past the heartbeat timeout).
	DownReason string `json:"down_reason,omitempty"`
	// DownSince is when it was declared down.
	DownSince time.Time `json:"down_since,omitzero"`
	CreatedAt time.Time `json:"created_at"`
	// Revision is the store revision the record was read at.
	Revision int64 `json:"-"`
}

// State is up, down or maintenance.
func (h Host) State() string {
	switch {
	case h.Down:
		return HostDown
	case h.Maintenance:
		return HostMaintenance
	default:
		return HostUp
	}
}

// Hypervisors a cluster may run.
const (
	HypervisorSimulator = "simulator"
	HypervisorQEMU      = "qemu"
)

// ClusterSpec is what a user declares about a cluster.
type ClusterSpec struct {
	Name                    string   `json:"name"`
	Nodes                   []string `json:"nodes"`
	StaticAddress           string   `json:"static_address"`
	Hypervisor              string   `json:"hypervisor"`
	HeartbeatTimeoutSeconds int      `json:"heartbeat_timeout_seconds"`
	// ForceDestroy lets the cluster's quorum be reset (kayo_quorum's
	// destroy) without quorum, so a cluster with nodes gone for good can
	// be torn down.
	ForceDestroy bool `json:"force_destroy,omitempty"`
}

// Cluster is a formed cluster as the cluster database holds it.
type Cluster struct {
	ClusterSpec
	// Validation is the report of the last formation or membership change.
	Validation []validate.Test `json:"validation"`
	// ValidatedAt is when Validation was made (zero in records older
	// than the field).
	ValidatedAt time.Time `json:"validated_at"`
	CreatedAt   time.Time `json:"created_at"`
	Revision    int64     `json:"-"`
}
