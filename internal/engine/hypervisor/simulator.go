package hypervisor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Backend is where the simulator keeps its nodes' records, so they
// outlive the process (the engine gives it the cluster database; tests an
// in-memory one, membackend_test.go). Get returns an error wrapping ErrNotFound for a missing key.
type Backend interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Put(ctx context.Context, key string, value []byte) error
	Delete(ctx context.Context, key string) error
	// List returns the values under prefix, by key.
	List(ctx context.Context, prefix string) (map[string][]byte, error)
}

// Simulator is the embedded Driver of one cluster. It keeps, per node, a
// record of each VM it knows (state, token, configuration) and, per VM,
// the newest token it has seen (the fence). It runs no guest: see the
// package documentation.
type Simulator struct {
	b       Backend
	cluster string
	// Live is the live migration model; zero fields take the defaults.
	Live LiveModel
	// DiskMBps is the modelled shared-volume throughput for quick
	// migration's save and restore.
	DiskMBps float64
}

// NewSimulator returns the simulator of cluster over b.
func NewSimulator(b Backend, cluster string) *Simulator {
	return &Simulator{b: b, cluster: cluster}
}

var _ Driver = (*Simulator)(nil)

// Name implements Driver.
func (s *Simulator) Name() string { return "simulator" }

func (s *Simulator) vmKey(node, name string) string { return s.cluster + "/node/" + node + "/" + name }

// RecordKey is the Backend key of node's record of VM name.
func (s *Simulator) RecordKey(node, name string) string { return s.vmKey(node, name) }
func (s *Simulator) fenceKey(name string) string        { return s.cluster + "/fence/" + name }

func (s *Simulator) load(ctx context.Context, node, name string) (Status, error) {
	b, err := s.b.Get(ctx, s.vmKey(node, name))
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return Status{}, fmt.Errorf("VM %q on node %q: %w", name, node, ErrNotFound)
		}
		return Status{}, err
	}
	var st Status
	if err := json.Unmarshal(b, &st); err != nil {
		return Status{}, fmt.Errorf("simulator record of VM %q on %q is corrupt: %w", name, node, err)
	}
	return st, nil
}

func (s *Simulator) save(ctx context.Context, st Status) error {
	b, _ := json.Marshal(st)
	return s.b.Put(ctx, s.vmKey(st.Node, st.Name), b)
}

// fence refuses tok when a newer token was seen for name, and records tok
// as the newest otherwise.
func (s *Simulator) fence(ctx context.Context, name string, tok Token) error {
	b, err := s.b.Get(ctx, s.fenceKey(name))
	var seen Token
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(b, &seen); err != nil {
			return fmt.Errorf("simulator fence of VM %q is corrupt: %w", name, err)
		}
	}
	if tok < seen {
		return fmt.Errorf("VM %q: token %d is older than token %d: %w", name, tok, seen, ErrFenced)
	}
	if tok > seen {
		nb, _ := json.Marshal(tok)
		return s.b.Put(ctx, s.fenceKey(name), nb)
	}
	return nil
}

// Status implements Driver.
func (s *Simulator) Status(ctx context.Context, node, name string) (Status, error) {
	return s.load(ctx, node, name)
}

// Where lists the nodes that know the VM, with their records, by node.
// Tests use it to check that at most one node runs a VM.
func (s *Simulator) Where(ctx context.Context, name string) ([]Status, error) {
	m, err := s.b.List(ctx, s.cluster+"/node/")
	if err != nil {
		return nil, err
	}
	var out []Status
	for k, v := range m {
		if !strings.HasSuffix(k, "/"+name) {
			continue
		}
		var st Status
		if err := json.Unmarshal(v, &st); err != nil {
			return nil, err
		}
		if st.Name == name {
			out = append(out, st)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out, nil
}

// Start implements Driver.
func (s *Simulator) Start(ctx context.Context, node string, vm VM, tok Token) error {
	if err := s.fence(ctx, vm.Name, tok); err != nil {
		return err
	}
	st, err := s.load(ctx, node, vm.Name)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if err == nil && st.State == Running && st.Token == tok {
		return nil
	}
	if err == nil && (st.State == Paused || st.State == Received) {
		return fmt.Errorf("VM %q on %q is %s (a live migration holds it): resume or discard it first: %w", vm.Name, node, st.State, ErrState)
	}
	return s.save(ctx, Status{Node: node, Name: vm.Name, State: Running, Token: tok, VM: vm, Boots: st.Boots + 1})
}

// Stop implements Driver.
func (s *Simulator) Stop(ctx context.Context, node, name string, tok Token) error {
	if err := s.fence(ctx, name, tok); err != nil {
		return err
	}
	st, err := s.load(ctx, node, name)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.State == Off {
		return nil
	}
	st.State, st.Token = Off, tok
	return s.save(ctx, st)
}

// Discard implements Driver.
func (s *Simulator) Discard(ctx context.Context, node, name string) error {
	return s.b.Delete(ctx, s.vmKey(node, name))
}

// stateHeader is the first block of a saved-state file.
type stateHeader struct {
	Magic    string `json:"magic"`
	Name     string `json:"name"`
	Node     string `json:"node"`
	Token    Token  `json:"token"`
	MemoryMB int64  `json:"memory_mb"`
}

const stateMagic = "KAYO-SIM-SAVED-STATE-1"

// StateHeaderSize is the size of the header the simulator writes at the
// start of a saved-state file; the memory image follows, sparse (the
// simulator has no memory to write).
const StateHeaderSize = 4096

// Save implements Driver.
func (s *Simulator) Save(ctx context.Context, node, name string, tok Token, f StateFile, progress func(Progress)) (SaveResult, error) {
	if err := s.fence(ctx, name, tok); err != nil {
		return SaveResult{}, err
	}
	st, err := s.load(ctx, node, name)
	if err != nil {
		return SaveResult{}, err
	}
	if st.State == Saved && st.Token == tok {
		return SaveResult{Bytes: StateHeaderSize + st.VM.MemoryMB<<20, DurationMs: QuickSaveMs(st.VM.MemoryMB, s.DiskMBps)}, nil
	}
	if st.State != Running && st.State != Paused {
		return SaveResult{}, fmt.Errorf("VM %q on %q is %s, not running: %w", name, node, st.State, ErrState)
	}
	hdr, _ := json.Marshal(stateHeader{Magic: stateMagic, Name: name, Node: node, Token: tok, MemoryMB: st.VM.MemoryMB})
	if len(hdr) > StateHeaderSize {
		return SaveResult{}, fmt.Errorf("simulator: state header of VM %q too large", name)
	}
	blk := make([]byte, StateHeaderSize)
	copy(blk, hdr)
	if err := f.Truncate(0); err != nil {
		return SaveResult{}, fmt.Errorf("saving state of VM %q: %w", name, err)
	}
	if _, err := f.WriteAt(blk, 0); err != nil {
		return SaveResult{}, fmt.Errorf("saving state of VM %q: %w", name, err)
	}
	size := StateHeaderSize + st.VM.MemoryMB<<20
	if err := f.Truncate(size); err != nil {
		return SaveResult{}, fmt.Errorf("saving state of VM %q: %w", name, err)
	}
	if progress != nil {
		progress(Progress{Phase: "save", Percent: 100})
	}
	st.State, st.Token = Saved, tok
	if err := s.save(ctx, st); err != nil {
		return SaveResult{}, err
	}
	return SaveResult{Bytes: size, DurationMs: QuickSaveMs(st.VM.MemoryMB, s.DiskMBps)}, nil
}

// Restore implements Driver.
func (s *Simulator) Restore(ctx context.Context, node string, vm VM, tok Token, f StateFile, progress func(Progress)) error {
	if err := s.fence(ctx, vm.Name, tok); err != nil {
		return err
	}
	if st, err := s.load(ctx, node, vm.Name); err == nil && st.State == Running && st.Token == tok {
		return nil
	}
	blk := make([]byte, StateHeaderSize)
	if _, err := f.ReadAt(blk, 0); err != nil {
		return fmt.Errorf("restoring VM %q: reading its saved state: %w", vm.Name, err)
	}
	var hdr stateHeader
	if err := json.Unmarshal(bytes.TrimRight(blk, "\x00"), &hdr); err != nil || hdr.Magic != stateMagic {
		return fmt.Errorf("restoring VM %q: the saved-state file holds no saved state (%v): %w", vm.Name, err, ErrState)
	}
	if hdr.Name != vm.Name {
		return fmt.Errorf("restoring VM %q: the saved-state file is VM %q's: %w", vm.Name, hdr.Name, ErrState)
	}
	if progress != nil {
		progress(Progress{Phase: "restore", Percent: 100})
	}
	prev, _ := s.load(ctx, node, vm.Name)
	return s.save(ctx, Status{Node: node, Name: vm.Name, State: Running, Token: tok, VM: vm, Boots: prev.Boots + 1})
}

// PreCopy implements Driver.
func (s *Simulator) PreCopy(ctx context.Context, from, to Node, vm VM, tok Token, progress func(Progress)) (LiveResult, error) {
	if from.ProcessorVendor != to.ProcessorVendor {
		return LiveResult{}, fmt.Errorf("VM %q from %s (%s) to %s (%s): %w", vm.Name, from.Name, from.ProcessorVendor,
			to.Name, to.ProcessorVendor, ErrIncompatible)
	}
	if err := s.fence(ctx, vm.Name, tok); err != nil {
		return LiveResult{}, err
	}
	src, err := s.load(ctx, from.Name, vm.Name)
	if err != nil {
		return LiveResult{}, err
	}
	plan := s.Live.Plan(vm.MemoryMB)
	if dst, err := s.load(ctx, to.Name, vm.Name); err == nil && dst.State == Received && src.State == Paused && dst.Token == tok {
		return LiveResult{Plan: plan}, nil // already copied
	}
	if src.State != Running {
		return LiveResult{}, fmt.Errorf("VM %q on %q is %s, not running: %w", vm.Name, from.Name, src.State, ErrState)
	}
	if progress != nil {
		sent := 0.0
		total := float64(vm.MemoryMB)
		for _, r := range plan.Rounds {
			sent += r.SentMB
			pct := 100
			if total > 0 {
				pct = min(99, int(sent/(sent+r.DirtiedMB)*100))
			}
			progress(Progress{Phase: "pre-copy", Round: r.N, Percent: pct, RemainingMB: r.DirtiedMB})
		}
	}
	// The target receives the image first; only then is the source paused,
	// so a crash in between leaves the source running.
	if err := s.save(ctx, Status{Node: to.Name, Name: vm.Name, State: Received, Token: tok, VM: vm}); err != nil {
		return LiveResult{}, err
	}
	src.State = Paused
	if err := s.save(ctx, src); err != nil {
		return LiveResult{}, err
	}
	if progress != nil {
		progress(Progress{Phase: "stop-and-copy", Round: len(plan.Rounds) + 1, Percent: 100})
	}
	return LiveResult{Plan: plan}, nil
}

// Resume implements Driver.
func (s *Simulator) Resume(ctx context.Context, node string, vm VM, tok Token) error {
	if err := s.fence(ctx, vm.Name, tok); err != nil {
		return err
	}
	st, err := s.load(ctx, node, vm.Name)
	if err != nil {
		return err
	}
	switch {
	case st.State == Running && st.Token == tok:
		return nil
	case st.State == Paused || st.State == Received:
	default:
		return fmt.Errorf("VM %q on %q is %s: nothing to resume: %w", vm.Name, node, st.State, ErrState)
	}
	st.State, st.Token, st.VM = Running, tok, vm
	return s.save(ctx, st)
}
