package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/placement"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// Failback. A VM that a failover or a drain moved away leaves a failback
// record (failback/<cluster>/<vm>) in the commit that moves it. The leader
// agent looks at the records on every tick and, per the VM's failback
// policy, moves the VM back to its home once home can run it:
//
//   - prevent (the default): never; a pinned VM still moves back through
//     the next terraform plan/apply (its owner_node), an unpinned one stays;
//   - immediate: as soon as home is up, out of maintenance and has room;
//   - window: like immediate, but only while the hour of the cluster's
//     clock is within [window_start_hour, window_end_hour] (both included,
//     wrapping past midnight when start > end). The cluster's local time is
//     UTC: the engine's clock read in UTC (injected in tests).
//
// Home is the most preferred node that can take the VM of: its owner_node,
// then its preferred_owners in order; with neither, the node it left. A VM
// already on a node at least as preferred as every node that can take it
// stays. A record is dropped once the VM moved again by any other means
// (its fencing token is no longer the one the record saw), or is deleted.
// The move itself is an ordinary migration (live when possible), fenced by
// the leader's lease as well as the VM's token.

// EventVMFailback is recorded when the leader decides to fail a VM back.
const EventVMFailback = "vm.failback"

type failbackRecord struct {
	VM string `json:"vm"`
	// From is the node the VM left, To where it went.
	From   string `json:"from"`
	To     string `json:"to"`
	Reason string `json:"reason"`
	// Token is the VM's fencing token once it landed on To.
	Token int64     `json:"token"`
	At    time.Time `json:"at"`
}

func (e *Engine) failbackOp(cluster string, r failbackRecord) store.Op {
	return putJSON(failbackKey(cluster, r.VM), r)
}

// FailbackAllowed reports whether policy f lets a VM fail back at now
// (evaluated in UTC, the cluster's local time).
func FailbackAllowed(f FailbackSpec, now time.Time) bool {
	switch f.Mode {
	case FailbackImmediate:
		return true
	case FailbackWindow:
		h := now.UTC().Hour()
		s, end := f.WindowStartHour, f.WindowEndHour
		if s <= end {
			return h >= s && h <= end
		}
		return h >= s || h <= end
	}
	return false
}

// failbackHome picks where vm belongs among the nodes of state that can
// take it: the first of owner_node, preferred_owners (or, with neither,
// from) that placement accepts. ok is false when the VM should stay: no
// such node, or the current node ranks at least as high.
func failbackHome(state placement.State, vm VM, from string) (string, bool) {
	order := []string{}
	if vm.OwnerNode != "" {
		order = append(order, vm.OwnerNode)
	}
	for _, n := range vm.PreferredOwners {
		if !slices.Contains(order, n) {
			order = append(order, n)
		}
	}
	if len(order) == 0 {
		order = []string{from}
	}
	for _, n := range order {
		if n == vm.Node {
			return "", false // already home, or on a node preferred to the rest
		}
		ps := placementSpec(vm.VMSpec, vm.Node)
		ps.OwnerNode = n
		if _, err := placement.Place(state, ps); err == nil {
			return n, true
		}
	}
	return "", false
}

// FailbackDecision is one VM the failback reconciler moves (or would).
type FailbackDecision struct {
	VM, From, To string
}

// reconcileFailback runs the failback policy of cluster's VMs that have a
// record; leaseCmp fences the moves by the leader's lease.
func (e *Engine) reconcileFailback(ctx context.Context, c Cluster, leaseCmp []store.Cmp, term int64) ([]FailbackDecision, error) {
	recs, revs, err := listJSON[failbackRecord](ctx, e.st, failbackClusterPrefix(c.Name))
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	var out []FailbackDecision
	var errs []error
	var view *placementView
	for i, r := range recs {
		vm, err := e.GetVM(ctx, c.Name, r.VM)
		stale := errors.Is(err, ErrNotFound)
		if err != nil && !stale {
			errs = append(errs, err)
			continue
		}
		if !stale && vm.Pending == nil && vm.Token != r.Token {
			stale = true // moved again since (terraform, another drain)
		}
		if stale {
			_, err := e.st.Commit(ctx, []store.Cmp{store.At(failbackKey(c.Name, r.VM), revs[i])}, []store.Op{store.Del(failbackKey(c.Name, r.VM))})
			if err != nil && !errors.Is(err, ErrConflict) {
				errs = append(errs, err)
			}
			continue
		}
		if vm.Pending != nil || !FailbackAllowed(vm.Failback, e.now()) || vm.Status == StatusFailed {
			continue
		}
		if view == nil {
			if view, err = e.placementView(ctx, c); err != nil {
				return out, err
			}
			if !view.quorum.Status.HasQuorum {
				return nil, nil
			}
		}
		home, ok := failbackHome(view.state, vm, r.From)
		if !ok {
			continue
		}
		// The decision is an event of its own, fenced by the lease, so the
		// history says who failed the VM back and under which policy.
		detail := map[string]string{"from": vm.Node, "to": home, "mode": vm.Failback.Mode, "token": fmt.Sprint(vm.Token),
			"term": fmt.Sprint(term), "left_for": r.Reason, "hour_utc": fmt.Sprint(e.now().UTC().Hour())}
		if vm.Failback.Mode == FailbackWindow {
			detail["window"] = fmt.Sprintf("%02d-%02d", vm.Failback.WindowStartHour, vm.Failback.WindowEndHour)
		}
		if _, err := e.st.Commit(ctx, append(slices.Clone(leaseCmp), store.At(vmKey(c.Name, vm.Name), vm.Revision)),
			[]store.Op{e.eventOp(Event{Kind: EventVMFailback, Cluster: c.Name, Subject: vm.Name, Detail: detail})}); err != nil {
			if errors.Is(err, ErrConflict) {
				continue // the VM changed or the lease moved: judge afresh next tick
			}
			errs = append(errs, err)
			continue
		}
		if _, err := e.migrateTo(ctx, c, vm.Name, home, vm.Node, ReasonFailback, leaseCmp); err != nil {
			if !errors.Is(err, ErrBusy) && !errors.Is(err, errTargetTaken) && !errors.Is(err, ErrConflict) {
				errs = append(errs, fmt.Errorf("failback of VM %s to %s: %w", vm.Name, home, err))
			}
			continue
		}
		out = append(out, FailbackDecision{VM: vm.Name, From: vm.Node, To: home})
		view = nil // placement changed
	}
	return out, errors.Join(errs...)
}
