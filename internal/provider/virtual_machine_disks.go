package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
)

// A VM's disks beyond the boot VHD's size and type: vhd.source and
// vhd.clone (a disk made from a template), data_disks, dvd and
// boot_order (internal/engine/vms_disks.go).

var (
	vhdAttrTypes = map[string]attr.Type{"size_gib": types.Int64Type, "type": types.StringType,
		"source": types.StringType, "clone": types.StringType}
	dataDiskAttrTypes = map[string]attr.Type{"size_gib": types.Int64Type, "type": types.StringType}
	dataDiskObjType   = types.ObjectType{AttrTypes: dataDiskAttrTypes}
	dvdAttrTypes      = map[string]attr.Type{"path": types.StringType}
)

const bootNote = "A QEMU VM boots its firmware (SeaBIOS: the devices of `boot_order`) when its disk is made from a " +
	"template (`vhd.source`), it has a `dvd` or a `boot_order`; a VM with a blank disk and none of these boots the lab's " +
	"small test kernel (the node agent's guest directory), or its firmware when the agent has none."

// vhdSchemaAttrs are the vhd object's attributes.
func vhdSchemaAttrs() map[string]schema.Attribute {
	return map[string]schema.Attribute{
		"size_gib": schema.Int64Attribute{Required: true, MarkdownDescription: "Virtual size in GiB (1–2040). Growing is " +
			"in place (VM off, or `allow_restart`); shrinking is an error. With `source`: at least the template's size " +
			"(the disk reads as the template, then grows)."},
		"type": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString(engine.VHDDynamic),
			MarkdownDescription: "`dynamic` (grows as written) or `fixed` (full size, reserved as unwritten extents, never " +
				"zero-filled). Changing it is an error. A differencing disk (`source` with `clone = \"differencing\"`) is `dynamic`."},
		"source": schema.StringAttribute{Optional: true, MarkdownDescription: "A template VHD on the VM's volume, e.g. " +
			"`templates\\base.vhd` (the `path` of a `kayo_volume_file`; `/` works too): the disk is made from it. Checked at " +
			"plan time when the template is already on the volume, else at apply. Changing it replaces the VM. " + bootNote,
			PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()}},
		"clone": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString(engine.CloneDifferencing),
			MarkdownDescription: "With `source`: `differencing` (default; a differencing VHD whose parent is the template: " +
				"it records only the VM's own writes and is made in constant time, and the template is then read-only and " +
				"cannot be deleted while children exist) or `copy` (a standalone copy of the template's blocks). Changing it " +
				"replaces the VM.",
			PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()}},
	}
}

// diskSchemaAttrs are data_disks, dvd and boot_order.
func diskSchemaAttrs() map[string]schema.Attribute {
	return map[string]schema.Attribute{
		"data_disks": schema.ListNestedAttribute{Optional: true, MarkdownDescription: "Data disks (at most 16), blank VHDs beside " +
			"the boot disk: `<letter>:\\<name>\\<name>-disk1.vhd`, ... (the guest's second, third, ... virtio disk). Added at " +
			"the end in place, the VM running or not (a running VM gets the new disks hot-plugged: no restart), and grown in place " +
			"(VM off, or `allow_restart`); removing one, shrinking it or changing its type is an error. Adding disks to a running " +
			"VM that also moves to another node is an error: add them and move it in two applies.",
			NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
				"size_gib": schema.Int64Attribute{Required: true, MarkdownDescription: "Virtual size in GiB (1–2040)."},
				"type": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString(engine.VHDDynamic),
					MarkdownDescription: "`dynamic` or `fixed`."},
			}}},
		"dvd": schema.SingleNestedAttribute{Optional: true, MarkdownDescription: "A DVD drive holding an ISO from the VM's volume " +
			"(read-only; an IDE CD drive under QEMU). Changing it needs the VM off, or `allow_restart`.",
			Attributes: map[string]schema.Attribute{
				"path": schema.StringAttribute{Required: true, MarkdownDescription: "The ISO on the volume, e.g. `isos\\tools.iso` " +
					"(the `path` of a `kayo_volume_file`)."},
			}},
		"boot_order": schema.ListAttribute{Optional: true, ElementType: types.StringType, MarkdownDescription: "The firmware's " +
			"boot order: `vhd` (the boot disk) and `dvd`, each at most once (default: the disk, then the DVD). " + bootNote},
	}
}

// diskSpec reads the disk attributes of m into s.
func (m vmModel) diskSpec(ctx context.Context, s *engine.VMSpec, diags *diag.Diagnostics) {
	if a := m.VHD.Attributes(); !m.VHD.IsNull() && !m.VHD.IsUnknown() {
		if v, ok := a["source"].(types.String); ok {
			s.VHD.Source = v.ValueString()
		}
		if v, ok := a["clone"].(types.String); ok {
			s.VHD.Clone = v.ValueString()
		}
	}
	for _, v := range m.DataDisks.Elements() {
		if o, ok := v.(types.Object); ok {
			a := o.Attributes()
			s.DataDisks = append(s.DataDisks, engine.VHDSpec{SizeGiB: a["size_gib"].(types.Int64).ValueInt64(),
				Type: a["type"].(types.String).ValueString()})
		}
	}
	if a := m.DVD.Attributes(); !m.DVD.IsNull() && !m.DVD.IsUnknown() {
		s.DVD = &engine.DVDSpec{Path: a["path"].(types.String).ValueString()}
	}
	s.BootOrder = strList(ctx, m.BootOrder, diags)
}

// disksToModel sets m's disk attributes from vm; prior says which the
// configuration leaves null, and keeps the paths as configured (`/` or
// `\`) when they name the same file.
func disksToModel(vm engine.VM, prior vmModel, m *vmModel) {
	src := nullIfEmpty(vm.VHD.Source)
	if a := prior.VHD.Attributes(); !prior.VHD.IsNull() && !prior.VHD.IsUnknown() {
		if p, ok := a["source"].(types.String); ok && !p.IsNull() && !p.IsUnknown() && samePath(p.ValueString(), vm.VHD.Source) {
			src = p
		}
	}
	clone := vm.VHD.Clone
	if clone == "" {
		clone = engine.CloneDifferencing
	}
	m.VHD = types.ObjectValueMust(vhdAttrTypes, map[string]attr.Value{"size_gib": types.Int64Value(vm.VHD.SizeGiB),
		"type": types.StringValue(vm.VHD.Type), "source": src, "clone": types.StringValue(clone)})
	if len(vm.DataDisks) == 0 && (prior.DataDisks.IsNull() || prior.DataDisks.IsUnknown()) {
		m.DataDisks = types.ListNull(dataDiskObjType)
	} else {
		elems := make([]attr.Value, len(vm.DataDisks))
		for i, d := range vm.DataDisks {
			elems[i] = types.ObjectValueMust(dataDiskAttrTypes, map[string]attr.Value{"size_gib": types.Int64Value(d.SizeGiB),
				"type": types.StringValue(d.Type)})
		}
		m.DataDisks = types.ListValueMust(dataDiskObjType, elems)
	}
	if vm.DVD == nil {
		m.DVD = types.ObjectNull(dvdAttrTypes)
	} else {
		p := types.StringValue(vm.DVD.Path)
		if a := prior.DVD.Attributes(); !prior.DVD.IsNull() && !prior.DVD.IsUnknown() {
			if pp, ok := a["path"].(types.String); ok && samePath(pp.ValueString(), vm.DVD.Path) {
				p = pp
			}
		}
		m.DVD = types.ObjectValueMust(dvdAttrTypes, map[string]attr.Value{"path": p})
	}
	m.BootOrder = strListValue(vm.BootOrder, prior.BootOrder.IsNull() || prior.BootOrder.IsUnknown())
}

// samePath: two spellings of one volume path (`\` or `/`).
func samePath(a, b string) bool {
	wa, _, err := engine.VolumeFilePath("path", a)
	if err != nil {
		return false
	}
	wb, _, err := engine.VolumeFilePath("path", b)
	return err == nil && wa == wb
}

// diskReplaced: the plan makes the boot disk from another template (or
// another way), which replaces the VM.
func diskReplaced(plan, state vmModel) bool {
	pa, sa := plan.VHD.Attributes(), state.VHD.Attributes()
	for _, k := range []string{"source", "clone"} {
		p, ok1 := pa[k].(types.String)
		s, ok2 := sa[k].(types.String)
		if !ok1 || !ok2 {
			continue
		}
		if k == "source" && samePath(p.ValueString(), s.ValueString()) {
			continue
		}
		if !p.Equal(s) && !(k == "clone" && s.IsNull()) {
			return true
		}
	}
	return false
}
