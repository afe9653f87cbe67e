package provider

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
)

// kayo_host's hardware facts are Optional+Computed: one the configuration
// leaves out is the host's node agent's report's (engine.HostSpec.FromAgent,
// internal/engine/hosts_facts.go). The plan shows it unknown until the
// host has it; once the host took it from its agent the plan keeps the
// state's value (the agent's later reports update the host, and a
// refresh shows them without a diff). With no value and no agent report
// the plan fails naming the attribute.

const fromAgentNote = " Leave it out to take the value the host's node agent (`kayoctl agent --node NAME`) " +
	"reports (see `reported`); without a value and without a report the plan fails naming this attribute."

// fact is m's value of an agent fact.
func (m hostModel) fact(f string) attr.Value {
	switch f {
	case engine.FactProcessorVendor:
		return m.ProcessorVendor
	case engine.FactProcessorModel:
		return m.ProcessorModel
	case engine.FactProcessorCores:
		return m.ProcessorCores
	case engine.FactMemoryMB:
		return m.MemoryMB
	}
	return m.NetworkAdapters
}

// omittedFacts are the agent facts m (a configuration) leaves out.
func (m hostModel) omittedFacts() []string {
	var out []string
	for _, f := range engine.AgentFacts {
		if m.fact(f).IsNull() {
			out = append(out, f)
		}
	}
	return out
}

// withFromAgent marks facts as the agent's and clears their values.
func withFromAgent(s engine.HostSpec, facts []string) engine.HostSpec {
	for _, f := range facts {
		switch f {
		case engine.FactProcessorVendor:
			s.ProcessorVendor = ""
		case engine.FactProcessorModel:
			s.ProcessorModel = ""
		case engine.FactProcessorCores:
			s.ProcessorCores = 0
		case engine.FactMemoryMB:
			s.MemoryMB = 0
		case engine.FactNetworkAdapters:
			s.Adapters = nil
		}
	}
	s.FromAgent = facts
	return s
}

// keepPlannedFacts keeps the planned (known) values of the facts: the
// plan promised the state's value, and a report newer than the refresh
// shows in the next one.
func (m *hostModel) keepPlannedFacts(plan hostModel) {
	if !plan.ProcessorVendor.IsUnknown() {
		m.ProcessorVendor = plan.ProcessorVendor
	}
	if !plan.ProcessorModel.IsUnknown() {
		m.ProcessorModel = plan.ProcessorModel
	}
	if !plan.ProcessorCores.IsUnknown() {
		m.ProcessorCores = plan.ProcessorCores
	}
	if !plan.MemoryMB.IsUnknown() {
		m.MemoryMB = plan.MemoryMB
	}
	if !plan.NetworkAdapters.IsUnknown() {
		m.NetworkAdapters = plan.NetworkAdapters
	}
}

// planAgentFacts plans the facts the configuration leaves out: the
// state's value when the host already takes it from its agent, unknown
// when it will (its agent has reported), an error naming the attribute
// when nothing can give it. A fact declared again after being the
// agent's changes nothing visible, so the plan marks `reported` unknown
// to make the update that records it as declared.
func (r *hostResource) planAgentFacts(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	var plan, cfg, state hostModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if !req.State.Raw.IsNull() {
		resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	}
	if resp.Diagnostics.HasError() || plan.Name.IsUnknown() {
		return
	}
	name := plan.Name.ValueString()
	var host *engine.Host
	if !req.State.Raw.IsNull() && state.Name.Equal(plan.Name) {
		if h, err := r.engine.GetHost(ctx, name); err == nil {
			host = &h
		}
	}
	omitted := cfg.omittedFacts()
	if host != nil {
		for _, f := range host.FromAgent {
			if !slices.Contains(omitted, f) && !cfg.fact(f).IsUnknown() && cfg.fact(f).Equal(state.fact(f)) {
				resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("reported"), types.ObjectUnknown(reportedAttrTypes))...)
				break
			}
		}
	}
	if len(omitted) == 0 {
		return
	}
	_, _, rerr := r.engine.HostReport(ctx, name)
	if rerr != nil && !errors.Is(rerr, engine.ErrNotFound) && !errors.Is(rerr, engine.ErrBadReport) {
		resp.Diagnostics.AddError("Cannot read the report of host "+name, rerr.Error())
		return
	}
	for _, f := range omitted {
		switch {
		case host != nil && slices.Contains(host.FromAgent, f):
			resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root(f), state.fact(f))...)
		case rerr == nil:
			// Taken from the report at apply: unknown until then (also
			// when it was declared and the state still holds that value).
			resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root(f), unknownFact(f))...)
		default:
			why := "no node agent has reported its machine"
			if errors.Is(rerr, engine.ErrBadReport) {
				why = "its node agent's report is unusable (" + rerr.Error() + ")"
			}
			resp.Diagnostics.AddAttributeError(path.Root(f), "Missing "+f,
				fmt.Sprintf("%s: host %s declares no %s and %s. Set %s, or run the host's agent (`kayoctl agent --node %s`) so that "+
					"it reports the value, then plan again.", f, name, f, why, f, name))
		}
	}
}

func unknownFact(f string) attr.Value {
	switch f {
	case engine.FactProcessorCores, engine.FactMemoryMB:
		return types.Int64Unknown()
	case engine.FactNetworkAdapters:
		return types.ListUnknown(types.ObjectType{AttrTypes: adapterAttrTypes})
	}
	return types.StringUnknown()
}

// keepStateWhenUnchanged keeps `state` known when the plan, once the
// agent's facts are planned, changes nothing. Terraform proposes null for
// a nested attribute the configuration leaves out (network_adapters), the
// framework then takes the resource as changed and marks every computed
// attribute unknown; planAgentFacts puts the adapters back, and without
// this `state` alone would show "(known after apply)" on every plan.
func (r *hostResource) keepStateWhenUnchanged(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.State.Raw.IsNull() || req.Plan.Raw.IsNull() {
		return
	}
	var plan, state hostModel
	resp.Diagnostics.Append(resp.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() || !plan.State.IsUnknown() {
		return
	}
	resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("state"), state.State)...)
	if !resp.Plan.Raw.Equal(req.State.Raw) {
		resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("state"), types.StringUnknown())...)
	}
}
