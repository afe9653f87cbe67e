package main

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tftypes"

	"github.com/kayo-labs/terraform-provider-kayo/internal/provider"
)

// vmShape is noop_vm: a resource with exactly kayo_virtual_machine's
// schema (the same attributes, nested objects, defaults and plan
// modifiers: the schema object is taken from the kayo provider) whose
// create, read, update and delete do nothing but copy the plan into
// state. Terraform and the framework do the same per-attribute work for it
// as for a kayo VM, so kayo/noop_vm is what the provider and its engine add
// on top; noop_thing is the small-schema floor. Like kayo, it warns once
// per VM whose owner_node changes, naming it in the summary: the issue
// asks for that warning, and Terraform's rendering of a diagnostic costs
// it a parse of the configuration file each time.
type vmShape struct{}

var _ resource.ResourceWithModifyPlan = (*vmShape)(nil)

func (r *vmShape) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || req.State.Raw.IsNull() {
		return
	}
	var name, from, to types.String
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("name"), &name)...)
	resp.Diagnostics.Append(req.State.GetAttribute(ctx, path.Root("owner_node"), &from)...)
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("owner_node"), &to)...)
	if !from.IsNull() && !to.IsUnknown() && !to.IsNull() && !from.Equal(to) {
		resp.Diagnostics.AddWarning(fmt.Sprintf("%s will be live-migrated from %s to %s", name.ValueString(), from.ValueString(), to.ValueString()),
			fmt.Sprintf("live migration of VM %s from %s to %s.", name.ValueString(), from.ValueString(), to.ValueString()))
	}
}

func (r *vmShape) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_vm"
}

func (r *vmShape) Schema(ctx context.Context, req resource.SchemaRequest, resp *resource.SchemaResponse) {
	provider.NewVirtualMachineResource().Schema(ctx, req, resp)
	resp.Schema.MarkdownDescription = "A VM that exists only in state (benchmark floor with kayo_virtual_machine's schema)."
}

// known replaces the values left unknown for apply (computed ones) by
// null, as a provider that computes nothing returns them.
func known(v tftypes.Value) (tftypes.Value, error) {
	return tftypes.Transform(v, func(_ *tftypes.AttributePath, v tftypes.Value) (tftypes.Value, error) {
		if !v.IsKnown() {
			return tftypes.NewValue(v.Type(), nil), nil
		}
		return v, nil
	})
}

func (r *vmShape) Create(_ context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	v, err := known(req.Plan.Raw)
	if err != nil {
		resp.Diagnostics.AddError("noop_vm", err.Error())
		return
	}
	resp.State.Raw = v
}

func (r *vmShape) Read(context.Context, resource.ReadRequest, *resource.ReadResponse) {}

func (r *vmShape) Update(_ context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	v, err := known(req.Plan.Raw)
	if err != nil {
		resp.Diagnostics.AddError("noop_vm", err.Error())
		return
	}
	resp.State.Raw = v
}

func (r *vmShape) Delete(context.Context, resource.DeleteRequest, *resource.DeleteResponse) {}
