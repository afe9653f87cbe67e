package qemu

import (
	"net"
	"path/filepath"
	"runtime"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/privsock"
)

// The request/result protocol between the engine's qemu driver
// (internal/engine/qemu_driver.go: it decides and asks) and a node's QEMU
// runner (internal/nodeagent/qemurun: it applies), over the cluster
// database (docs/ARCHITECTURE.md, "The request/result protocol"). Both
// sides share these records and keys; neither imports the other.

// AgentTimeout: an agent whose QEMU runner has not reported for this long
// is down.
const AgentTimeout = 5 * time.Second

// Requests a runner carries out.
const (
	OpStart    = "start"
	OpStop     = "stop"
	OpDiscard  = "discard"
	OpIncoming = "incoming"
	OpMigrate  = "migrate"
	OpResume   = "resume"
	OpSave     = "save"
	OpRestore  = "restore"
	OpFence    = "fence"
	OpStatus   = "status"
	// OpSweep is internal to a runner (the fence sweep), never recorded.
	OpSweep = "sweep"
)

// Incoming is the run state of a target QEMU that waits for a live
// migration's stream.
const Incoming hypervisor.RunState = "incoming"

// Request is one request to a node's runner (one at a time per VM and node).
type Request struct {
	ID    string           `json:"id"`
	Op    string           `json:"op"`
	VM    hypervisor.VM    `json:"vm"`
	Token hypervisor.Token `json:"token"`
	// Addr and Port: where a live migration's target listens.
	Addr string `json:"addr,omitempty"`
	Port int    `json:"port,omitempty"`
	By   string `json:"by"`
	// Deadline bounds the runner's work on the request (the caller's
	// context's deadline; zero: the runner's default).
	Deadline time.Time `json:"deadline,omitempty"`
	// Notify is a unix socket the runner dials after each write of the
	// result, so the waiting driver reads it at once rather than at its
	// next poll ("" none).
	Notify  string    `json:"notify,omitempty"`
	Created time.Time `json:"created"`
}

// NotifyDriver tells the driver waiting for r that its result changed
// (a unix socket: a file in the data directory, or on Linux an abstract
// one; none, and the driver only polls).
func (r Request) NotifyDriver() {
	if r.Notify == "" || (r.Notify[0] == '@' && runtime.GOOS != "linux") {
		return
	}
	if c, err := net.DialTimeout("unix", r.Notify, 50*time.Millisecond); err == nil {
		_ = c.Close()
	}
}

// Result is a runner's progress and outcome of a Request.
type Result struct {
	ID       string               `json:"id"`
	Done     bool                 `json:"done"`
	Err      string               `json:"err,omitempty"`
	Kind     string               `json:"kind,omitempty"`
	Progress *hypervisor.Progress `json:"progress,omitempty"`
	Addr     string               `json:"addr,omitempty"`
	Port     int                  `json:"port,omitempty"`
	Bytes    int64                `json:"bytes,omitempty"`
	Live     *hypervisor.LivePlan `json:"live,omitempty"`
	Status   *NodeVM              `json:"status,omitempty"`
	Updated  time.Time            `json:"updated"`
}

// NodeVM is a node runner's view of one VM of a qemu cluster.
type NodeVM struct {
	hypervisor.Status
	PID    int    `json:"pid,omitempty"`
	QMP    string `json:"qmp,omitempty"`
	Serial string `json:"serial,omitempty"`
	NBD    string `json:"nbd,omitempty"`
	Agent  string `json:"agent,omitempty"`
	// Reason says why it is not running (exited, fenced, stopped).
	Reason  string    `json:"reason,omitempty"`
	Updated time.Time `json:"updated"`
}

// AgentBeat is a node agent's QEMU runner heartbeat.
type AgentBeat struct {
	Node    string    `json:"node"`
	Agent   string    `json:"agent"`
	PID     int       `json:"pid"`
	Cluster string    `json:"cluster"`
	Time    time.Time `json:"time"`
	// Error is why the runner cannot run VMs (no QEMU).
	Error string `json:"error,omitempty"`
	// Accel is the accelerator of the node's VMs: kvm (a usable
	// /dev/kvm) or tcg.
	Accel string `json:"accel,omitempty"`
	// Stopped: the agent shut down then (its QEMU processes with it).
	Stopped time.Time `json:"stopped,omitempty"`
}

// GuestNet is what a node's agent last saw of a VM's guest addresses:
// Addresses[i] is adapter i's address (CIDR) once the guest took it by
// DHCP from this node's server (Source "dhcp") or answered an ARP probe
// for it from the switch ("arp"), else "".
type GuestNet struct {
	Node      string   `json:"node"`
	VM        string   `json:"vm"`
	Token     int64    `json:"token"`
	Addresses []string `json:"addresses"`
	Sources   []string `json:"sources,omitempty"`
	// Launched: when this node launched the guest's QEMU.
	Launched  time.Time `json:"launched"`
	CheckedAt time.Time `json:"checked_at"`
}

// AgentSocket is the unix socket a node's runner listens on for pokes
// (in its own private directory; privsock).
func AgentSocket(dataDir, node string) string {
	return privsock.Path(filepath.Join(dataDir, "qemu"), node+".sock")
}

// The protocol's keys in the cluster database (the rest of the key schema
// is internal/engine/keys.go).
const (
	// qemu/<cluster>/req/<node>/<vm>: the request to node's runner (one
	// at a time per VM and node); .../res/...: its result and progress;
	// .../node/...: the node's view of the VM (NodeVM);
	// .../guest-net/...: its guest addresses (GuestNet);
	// qemu/<cluster>/fence/<vm>: the newest ownership token seen;
	// qemu/<cluster>/migration-key: the live-migration TLS key.
	KeyPrefix = "qemu/"
	// qemu-agents/<node>: the agent's QEMU runner heartbeat (AgentBeat).
	AgentsPrefix = "qemu-agents/"
)

func ReqPrefix(cluster, node string) string   { return KeyPrefix + cluster + "/req/" + node + "/" }
func ReqKey(cluster, node, vm string) string  { return ReqPrefix(cluster, node) + vm }
func ResKey(cluster, node, vm string) string  { return KeyPrefix + cluster + "/res/" + node + "/" + vm }
func NodePrefix(cluster string) string        { return KeyPrefix + cluster + "/node/" }
func NodeKey(cluster, node, vm string) string { return NodePrefix(cluster) + node + "/" + vm }
func FencePrefix(cluster string) string       { return KeyPrefix + cluster + "/fence/" }
func FenceKey(cluster, vm string) string      { return FencePrefix(cluster) + vm }
func MigrationKeyKey(cluster string) string   { return KeyPrefix + cluster + "/migration-key" }
func AgentKey(node string) string             { return AgentsPrefix + node }
func GuestNetKey(cluster, node, vm string) string {
	return KeyPrefix + cluster + "/guest-net/" + node + "/" + vm
}
