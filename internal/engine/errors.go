package engine

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/validate"
)

// Sentinel errors callers test with errors.Is. The store's own sentinels
// (store.ErrNotFound, store.ErrConflict, store.ErrLockTimeout) pass through.
var (
	ErrNotFound    = store.ErrNotFound
	ErrConflict    = store.ErrConflict
	ErrLockTimeout = store.ErrLockTimeout
	// ErrCorrupt: the cluster database file is damaged (store.CorruptError).
	ErrCorrupt = store.ErrCorrupt
	// ErrDatabaseLost: the database file is missing or empty where one
	// existed (DatabaseLostError).
	ErrDatabaseLost = errors.New("cluster database missing")
	// ErrInvalid: the request is malformed; see InputError for which attribute.
	ErrInvalid = errors.New("invalid input")
	// ErrExists: the object already exists (import it instead).
	ErrExists = errors.New("already exists")
	// ErrInUse: the object is referenced by another and cannot go.
	ErrInUse = errors.New("in use")
	// ErrValidationFailed: cluster validation has failed tests.
	ErrValidationFailed = errors.New("cluster validation failed")
	// ErrLUNLost: a volume's LUN no longer holds that volume (zeroed,
	// reformatted, deleted or swapped for another LUN); see LUNLostError.
	ErrLUNLost = errors.New("the LUN does not hold the volume")
)

// InputError says which attribute was wrong, with what value, and what is
// allowed. It matches ErrInvalid.
type InputError struct {
	Attribute string
	Value     string
	Allowed   string
	// Detail replaces the default sentence when set.
	Detail string
}

func (e *InputError) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("%s: %s", e.Attribute, e.Detail)
	}
	return fmt.Sprintf("%s: %q is not allowed; allowed: %s", e.Attribute, e.Value, e.Allowed)
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InputError) Is(target error) bool { return target == ErrInvalid }

func invalid(attr, value, allowed string) error {
	return &InputError{Attribute: attr, Value: value, Allowed: allowed}
}

// ValidationError carries every failed validation test. It matches
// ErrValidationFailed.
type ValidationError struct {
	Cluster string
	Failed  []validate.Test
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cluster %q: validation failed (%d failed test", e.Cluster, len(e.Failed))
	if len(e.Failed) != 1 {
		b.WriteString("s")
	}
	b.WriteString("):")
	for _, t := range e.Failed {
		fmt.Fprintf(&b, "\n  - %s / %s [%s]: %s", t.Category, t.Name, t.Attribute, t.Message)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrValidationFailed) true.
func (e *ValidationError) Is(target error) bool { return target == ErrValidationFailed }

// LUNLostError says what a volume's LUN holds instead of the volume the
// database records. It matches ErrLUNLost (and the cause, e.g. a missing
// file).
type LUNLostError struct {
	Volume, Letter, LUN, Device string
	// Holds is the UUID of the Kayo FS volume found instead ("" none).
	Holds string
	// Reason says what was found when no Kayo FS volume was.
	Reason string
	// Node and ReportedAt are set when a node's report (not this
	// process's own look at the LUN) says so (volume_reports.go).
	Node       string
	ReportedAt time.Time
	Err        error
}

// Found says what the LUN holds instead of the volume.
func (e *LUNLostError) Found() string {
	by := ""
	if e.Node != "" {
		by = fmt.Sprintf(" (as node %s reported at %s)", e.Node, e.ReportedAt.Format(time.RFC3339))
	}
	if e.Holds != "" {
		return fmt.Sprintf("LUN %q (%s) holds volume UUID %s, the database expects %s (volume %s:)%s", e.LUN, e.Device, e.Holds, e.Volume, e.Letter, by)
	}
	return fmt.Sprintf("LUN %q (%s) no longer holds volume %s (%s:): %s%s", e.LUN, e.Device, e.Volume, e.Letter, e.Reason, by)
}

func (e *LUNLostError) Error() string {
	if e.Holds != "" {
		return e.Found() + "; this data_dir is a copy of another installation's whose LUN is not its own, or the LUN was " +
			"swapped for another volume's. Nothing is written to it: point lun at the LUN that holds " + e.Volume + ", or put that LUN back"
	}
	return e.Found() + ". It was zeroed, reformatted or deleted outside Kayo; nothing is written to it. Restore it, or " +
		"destroy the volume (destroy then only forgets it)"
}

// Is makes errors.Is(err, ErrLUNLost) true.
func (e *LUNLostError) Is(target error) bool { return target == ErrLUNLost }

func (e *LUNLostError) Unwrap() error { return e.Err }

// tidyError drops a segment its message repeats: os errors carry their
// path, and so does each wrapping that names the file ("open P: open P:
// open P: permission denied" reads "open P: permission denied").
type tidyError struct{ err error }

func (t tidyError) Error() string {
	parts := strings.Split(t.err.Error(), ": ")
	out := parts[:0]
	for i, p := range parts {
		if i > 0 && p == out[len(out)-1] {
			continue
		}
		out = append(out, p)
	}
	return strings.Join(out, ": ")
}

func (t tidyError) Unwrap() error { return t.err }

// tidy wraps err so its message says each repeated segment once.
func tidy(err error) error {
	if err == nil {
		return nil
	}
	return tidyError{err}
}

// DatabaseLostError: the embedded database file is missing or empty, yet
// the data dir shows that one existed. It matches ErrDatabaseLost.
type DatabaseLostError struct {
	Dir, Path string
	Empty     bool // the file exists with 0 bytes (else it is missing)
	Evidence  []string
	LUNs      bool // the evidence includes LUN images
}

func (e *DatabaseLostError) Error() string {
	state := "is missing"
	if e.Empty {
		state = "is empty (0 bytes)"
	}
	over := fmt.Sprintf("remove %s", filepath.Join(e.Dir, DatabaseMarker))
	if e.LUNs {
		over = fmt.Sprintf("remove %s and move the LUN images out of %s (the VMs on them are then orphaned)",
			filepath.Join(e.Dir, DatabaseMarker), filepath.Join(e.Dir, SANDir))
	}
	return fmt.Sprintf("the cluster database %s %s, yet a database existed in %s: %s. Nothing was created: a new, empty "+
		"database would forget every host, cluster, volume and VM. Restore the last backup with "+
		"`kayoctl --data-dir %s restore BACKUP_FILE`; or, to start over on purpose, %s",
		e.Path, state, e.Dir, strings.Join(e.Evidence, "; "), e.Dir, over)
}

// Is makes errors.Is(err, ErrDatabaseLost) true.
func (e *DatabaseLostError) Is(target error) bool { return target == ErrDatabaseLost }

// ForceRequiredError is a destructive step refused because it cannot be
// done safely; kayo_cluster's force_destroy = true (applied first) lets
// it through. It matches its cause (e.g. ErrQuorumLost).
type ForceRequiredError struct{ Cause error }

func (e *ForceRequiredError) Error() string {
	return e.Cause.Error() + ". If the down nodes are gone for good and the cluster is to be torn down, set " +
		"force_destroy = true on its kayo_cluster, apply, then destroy again (only the quorum record and the " +
		"cluster go; no node's data is touched)"
}

func (e *ForceRequiredError) Unwrap() error { return e.Cause }

// ---- sentinels of the cluster operations ----

// ErrAgentDown: the node agent that must act is not running.
var ErrAgentDown = errors.New("node agent is not running")

// ErrBadReport: a node agent's record (host report, probe round) is
// unreadable, out of range or of another version; it is not used.
var ErrBadReport = errors.New("node agent's report is unusable")

// ErrWorkExpired: a node-work request's deadline passed before the node's
// executor ran it; nothing was done (nodework.go).
var ErrWorkExpired = errors.New("the request expired before the node's executor ran it")

// ErrBusy: another live process is changing the VM.
var ErrBusy = errors.New("another operation is in progress")

// ErrQuorumLost: the cluster has no quorum (or a change would leave it
// without), so the change is refused. See QuorumLostError.
var ErrQuorumLost = errors.New("cluster has lost quorum")

// QuorumLostError says that a cluster has no quorum (or that a change
// would leave it without), with the figures. It matches ErrQuorumLost.
type QuorumLostError struct {
	Cluster string
	Status  QuorumStatus
	// Action is what was refused ("changing the cluster").
	Action string
	// Would is set when the cluster has quorum now and the change would
	// lose it; Status is then the status after the change.
	Would bool
}

func (e *QuorumLostError) Error() string {
	figures := fmt.Sprintf("%d of %d votes present, %d needed", e.Status.VotesPresent, e.Status.TotalVotes, e.Status.VotesNeeded)
	down := ""
	if len(e.Status.Down) > 0 {
		down = "; down: " + strings.Join(e.Status.Down, ", ")
	}
	if e.Would {
		return fmt.Sprintf("%s would leave cluster %q without quorum (%s%s); refused", e.Action, e.Cluster, figures, down)
	}
	return fmt.Sprintf("cluster %q has lost quorum (%s%s): %s is refused until quorum returns — "+
		"bring nodes back (restart their agents, or `kayoctl host recover NAME` in the lab)", e.Cluster, figures, down, e.Action)
}

// Is makes errors.Is(err, ErrQuorumLost) true.
func (e *QuorumLostError) Is(target error) bool { return target == ErrQuorumLost }

// DrainError refuses a drain that cannot place every VM. It matches
// ErrInvalid; Attribute is the attribute whose change asked for the drain
// (maintenance, nodes).
type DrainError struct {
	Attribute string
	Cluster   string
	Nodes     []string
	Reason    string
	Misfits   []Misfit
}

func (e *DrainError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: cannot drain %s of cluster %q for %s: ", e.Attribute, strings.Join(e.Nodes, ", "), e.Cluster, e.Reason)
	names := make([]string, len(e.Misfits))
	for i, m := range e.Misfits {
		names[i] = m.VM
	}
	fmt.Fprintf(&b, "%d VM(s) fit on no other node (%s); nothing was moved.", len(e.Misfits), strings.Join(names, ", "))
	for _, m := range e.Misfits {
		fmt.Fprintf(&b, "\n  - %s (on %s): %s", m.VM, m.Node, m.Why)
	}
	b.WriteString("\nFree memory on another node, widen possible_owners, relax required anti-affinity, or stop or delete those VMs first.")
	return b.String()
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *DrainError) Is(target error) bool { return target == ErrInvalid }

// Internal sentinels: they never leave the engine.

// errTargetTaken: the planned target of a move can no longer take the VM.
var errTargetTaken = errors.New("the planned target can no longer take the VM")

// errPairBusy: a live migration between the same two nodes runs.
var errPairBusy = errors.New("a live migration between these nodes is in progress")

// errNoCommit lets fn end a transaction without writing.
var errNoCommit = errors.New("nothing to commit")

// ErrGuestNetTimeout: a VM's guest took no address on an adapter within
// the wait asked for (wait_for_ip). See GuestNetTimeoutError.
var ErrGuestNetTimeout = errors.New("guest took no address in time")
