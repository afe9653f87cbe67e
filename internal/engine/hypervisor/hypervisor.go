// Package hypervisor is the VM runtime of a kayo cluster behind one
// interface, Driver. The engine decides (placement, migration type,
// ownership with fencing tokens in the cluster database) and calls a
// Driver to act on a node: start, stop, save and restore state, live
// migrate.
//
// Simulator is the embedded driver: it keeps each node's VMs as records
// in a Backend (the engine gives it the cluster database) and models live
// migration deterministically (LiveModel). Nothing boots: there is no
// guest, no CPU, and no memory is copied; durations are computed by the
// model, not waited for. A QEMU driver (issue 7) and a Hyper-V driver
// (WinRM) implement the same interface later.
//
// Fencing: every call that changes a VM carries the VM's ownership token
// from the cluster database. A driver refuses (ErrFenced) a call whose
// token is older than the newest it has seen for that VM, so a process
// that lost ownership (killed mid-migration, then overtaken) cannot touch
// the VM again.
package hypervisor

import (
	"context"
	"errors"
	"io"
)

// Token is a VM's ownership (fencing) token: it grows by one every time
// the cluster database gives the VM to a node.
type Token int64

// RunState is what a node's hypervisor is doing with a VM.
type RunState string

// Run states.
const (
	// Off: defined on the node, not running.
	Off RunState = "off"
	// Running: the guest runs on this node.
	Running RunState = "running"
	// Paused: stopped for the stop-and-copy phase of a live migration;
	// its memory is on the target, where it resumes.
	Paused RunState = "paused"
	// Saved: its state was saved to a file (quick migration) and it no
	// longer runs here.
	Saved RunState = "saved"
	// Received: a live migration's target holds the memory image, ready
	// to resume.
	Received RunState = "received"
)

// Errors callers test with errors.Is.
var (
	// ErrNotFound: the node does not know the VM.
	ErrNotFound = errors.New("hypervisor: VM not known on this node")
	// ErrFenced: the call's token is older than the VM's newest token.
	ErrFenced = errors.New("hypervisor: stale ownership token (fenced)")
	// ErrState: the VM is not in a state that allows the call.
	ErrState = errors.New("hypervisor: VM is in the wrong state for this operation")
	// ErrIncompatible: live migration between different processor vendors.
	ErrIncompatible = errors.New("hypervisor: processors are not compatible for live migration")
)

// Adapter is a VM network adapter.
type Adapter struct {
	Switch string `json:"switch"`
	MAC    string `json:"mac"`
	// Address is the guest's static address on the switch (CIDR; ""
	// none), which the guest is handed.
	Address string `json:"address,omitempty"`
}

// VM is what a driver needs to run a VM.
type VM struct {
	Name       string `json:"name"`
	MemoryMB   int64  `json:"memory_mb"`
	Processors int    `json:"processors"`
	// VHDPath and ConfigPath are the paths on the shared volume as nodes
	// see them (O:\WEB01\WEB01.vhd).
	VHDPath    string    `json:"vhd_path"`
	ConfigPath string    `json:"config_path"`
	Adapters   []Adapter `json:"adapters,omitempty"`
}

// Status is a node's view of a VM.
type Status struct {
	Node  string   `json:"node"`
	Name  string   `json:"name"`
	State RunState `json:"state"`
	Token Token    `json:"token"`
	VM    VM       `json:"vm"`
	// Boots counts cold starts and restores on this node.
	Boots int `json:"boots"`
}

// Node is what a driver is told about a node.
type Node struct {
	Name            string
	ProcessorVendor string
}

// Progress is reported during long operations.
type Progress struct {
	Phase   string // "pre-copy", "stop-and-copy", "save", "restore"
	Round   int
	Percent int
	// RemainingMB is the memory still to transfer.
	RemainingMB float64
}

// LiveResult describes a live migration's memory transfer.
type LiveResult struct {
	Plan LivePlan
}

// SaveResult describes a saved state file.
type SaveResult struct {
	Bytes      int64
	DurationMs int64
}

// StateFile is a file the state of a VM is saved to (on the shared
// volume): a kayofs file or an *os.File.
type StateFile interface {
	io.ReaderAt
	io.WriterAt
	Truncate(size int64) error
}

// Driver runs VMs on a cluster's nodes. Every method is idempotent where
// it can be: calling it again after a crash with the same arguments
// either repeats the effect or reports that it already happened.
type Driver interface {
	// Name is the driver name ("simulator", "qemu").
	Name() string
	// Status returns node's view of the VM, or ErrNotFound.
	Status(ctx context.Context, node, name string) (Status, error)
	// Start cold-boots the VM on node (defining it if new). Already
	// running there with tok: it attaches the data disks the VM's record
	// names and the running VM lacks (hot-plug), else a no-op.
	Start(ctx context.Context, node string, vm VM, tok Token) error
	// Stop shuts the VM down on node (it stays defined, Off). Not
	// running: no-op.
	Stop(ctx context.Context, node, name string, tok Token) error
	// Discard forgets the VM on node whatever its state (after a
	// migration away, or when the VM is deleted).
	Discard(ctx context.Context, node, name string) error

	// Save saves a running (or paused) VM's state to f and leaves it
	// Saved on node: the first half of a quick migration.
	Save(ctx context.Context, node, name string, tok Token, f StateFile, progress func(Progress)) (SaveResult, error)
	// Restore runs the VM on node from the state in f, with the new
	// owner's token.
	Restore(ctx context.Context, node string, vm VM, tok Token, f StateFile, progress func(Progress)) error

	// PreCopy copies the memory of the VM running on from to to, in
	// rounds, while it keeps running; then stops it on from (Paused) and
	// copies the rest (stop-and-copy), leaving the image Received on to.
	PreCopy(ctx context.Context, from, to Node, vm VM, tok Token, progress func(Progress)) (LiveResult, error)
	// Resume runs the VM on node from a Paused or Received image with tok
	// (the new owner's token on a live migration's target, the old one
	// when a live migration is rolled back on its source).
	Resume(ctx context.Context, node string, vm VM, tok Token) error
}
