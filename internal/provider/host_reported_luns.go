package provider

import (
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kayo-labs/terraform-provider-kayo/internal/hostfacts"
)

// kayo_host.reported.luns: the LUNs the host's agent sees (hostfacts/luns.go).

var reportedLUNAttrTypes = map[string]attr.Type{
	"path": types.StringType, "size_bytes": types.Int64Type, "identity": types.StringType,
	"ids": types.ListType{ElemType: types.StringType}, "kayofs_uuid": types.StringType, "kayofs_label": types.StringType,
}

var reportedLUNsType = types.ListType{ElemType: types.ObjectType{AttrTypes: reportedLUNAttrTypes}}

func reportedLUNsSchema() schema.ListNestedAttribute {
	str := func(d string) schema.StringAttribute {
		return schema.StringAttribute{Computed: true, MarkdownDescription: d}
	}
	return schema.ListNestedAttribute{
		Computed: true,
		MarkdownDescription: "The LUNs the host sees: its block devices, the embedded SAN's images and the LUN paths its agent " +
			"was given (`--lun`); null from an agent that does not list LUNs. A `kayo_shared_volume` is created only when " +
			"every node's report lists its LUN.",
		NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
			"path":       str("The device or image path on this host."),
			"size_bytes": schema.Int64Attribute{Computed: true, MarkdownDescription: "Size in bytes."},
			"identity": str("The name a volume's `device_id` gives it: its preferred `/dev/disk/by-id` name (a WWN first), " +
				"`san:NAME` for an embedded SAN LUN, empty when the host knows none."),
			"ids":          schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "All its `/dev/disk/by-id` names."},
			"kayofs_uuid":  str("The Kayo FS volume UUID when it holds one, else empty."),
			"kayofs_label": str("The Kayo FS volume label when it holds one."),
		}},
	}
}

func reportedLUNsValue(luns []hostfacts.LUN) types.List {
	if luns == nil {
		return types.ListNull(reportedLUNsType.ElemType)
	}
	vs := make([]attr.Value, len(luns))
	for i, l := range luns {
		ids := make([]attr.Value, len(l.IDs))
		for j, id := range l.IDs {
			ids[j] = types.StringValue(id)
		}
		vs[i] = types.ObjectValueMust(reportedLUNAttrTypes, map[string]attr.Value{
			"path": types.StringValue(l.Path), "size_bytes": types.Int64Value(l.SizeBytes), "identity": types.StringValue(l.Identity),
			"ids": types.ListValueMust(types.StringType, ids), "kayofs_uuid": types.StringValue(l.KayofsUUID),
			"kayofs_label": types.StringValue(l.KayofsLabel),
		})
	}
	return types.ListValueMust(reportedLUNsType.ElemType, vs)
}
