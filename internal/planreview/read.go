// Package planreview tells a reviewer what a kayo plan will do before it is
// approved: the VMs that migrate (from, to, live or quick), the resources
// replaced (destroyed and recreated: data-loss risk), volumes formatted or
// destroyed, nodes added or removed with the failures tolerated before and
// after, quorum changes and hosts entering maintenance with the VMs they
// drain. It reads `terraform show -json` output (terraform-json), and
// consults the cluster database through a Source when one is given. The
// package does no I/O of its own.
package planreview

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	tfjson "github.com/hashicorp/terraform-json"
)

// ErrBadPlan is the class of every input Read refuses.
var ErrBadPlan = errors.New("not a kayo plan")

// BadPlanError says why an input is not a plan this package reviews.
type BadPlanError struct{ Reason string }

func (e *BadPlanError) Error() string { return e.Reason }

// Is makes errors.Is(err, ErrBadPlan) true.
func (e *BadPlanError) Is(target error) bool { return target == ErrBadPlan }

// Read parses the output of `terraform show -json PLANFILE` (or `tofu show
// -json`). It refuses input that is not JSON, JSON that is not a plan (a
// state, say) and a plan with no kayo resource in it, naming what it found.
func Read(data []byte) (*tfjson.Plan, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, &BadPlanError{"the input is empty: want the output of `terraform show -json PLANFILE`"}
	}
	if !json.Valid(trimmed) {
		return nil, &BadPlanError{fmt.Sprintf("the input is not JSON (it starts with %q): want the output of `terraform show -json PLANFILE`, not the plan file itself or `terraform plan`'s text", head(trimmed))}
	}
	if trimmed[0] != '{' {
		return nil, &BadPlanError{"the input is JSON but not an object: want the output of `terraform show -json PLANFILE`"}
	}
	// One decoding pass: terraform-json checks the format version.
	var p tfjson.Plan
	if err := json.Unmarshal(trimmed, &p); err != nil {
		if p.FormatVersion == "" && strings.Contains(err.Error(), "format version is missing") {
			return nil, &BadPlanError{"the input is JSON but has no format_version: want the output of `terraform show -json PLANFILE`"}
		}
		return nil, &BadPlanError{"the plan cannot be read: " + err.Error()}
	}
	if p.PlannedValues == nil && p.ResourceChanges == nil {
		return nil, &BadPlanError{"the input is not a plan (no planned_values or resource_changes; a state?): run `terraform plan -out=PLANFILE` and `terraform show -json PLANFILE`"}
	}
	if !hasKayo(&p) {
		return nil, &BadPlanError{fmt.Sprintf("the plan holds no kayo resource (kayo_* types of local/kayo/kayo); its providers: %s", providersOf(&p))}
	}
	return &p, nil
}

func head(b []byte) string {
	if len(b) > 16 {
		b = b[:16]
	}
	return string(b)
}

func isKayo(typ string) bool { return strings.HasPrefix(typ, "kayo_") }

func hasKayo(p *tfjson.Plan) bool {
	for _, rc := range p.ResourceChanges {
		if isKayo(rc.Type) {
			return true
		}
	}
	found := false
	walkState(p.PriorState, func(r *tfjson.StateResource) {
		if isKayo(r.Type) {
			found = true
		}
	})
	return found
}

func providersOf(p *tfjson.Plan) string {
	set := map[string]bool{}
	for _, rc := range p.ResourceChanges {
		set[rc.ProviderName] = true
	}
	if len(set) == 0 {
		return "none (an empty plan)"
	}
	var out []string
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// walkState calls fn for every resource instance of s, child modules
// included.
func walkState(s *tfjson.State, fn func(*tfjson.StateResource)) {
	if s == nil || s.Values == nil {
		return
	}
	var walk func(m *tfjson.StateModule)
	walk = func(m *tfjson.StateModule) {
		if m == nil {
			return
		}
		for _, r := range m.Resources {
			fn(r)
		}
		for _, c := range m.ChildModules {
			walk(c)
		}
	}
	walk(s.Values.RootModule)
}
