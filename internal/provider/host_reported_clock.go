package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
)

// kayo_host.reported.clock_offset_ms: the node's clock against its
// cluster's, from its agent's latest probe round (engine.HostClock;
// docs/ARCHITECTURE.md, "Clock offset").

func clockOffsetSchema() schema.Int64Attribute {
	return schema.Int64Attribute{Computed: true, MarkdownDescription: "How far this node's clock runs ahead of its " +
		"cluster's (negative: behind), in milliseconds, as its agent measured it in its latest round of network probes " +
		"(NTP's offset against each other node, the median over the nodes); null when the host is no node, its agent " +
		"does not probe, or no other node answered. Cluster validation warns beyond 1 second and fails beyond 5 minutes."}
}

// withClockOffset sets clock_offset_ms of a reported object.
func withClockOffset(ctx context.Context, e *engine.Engine, node string, obj types.Object) (types.Object, error) {
	c, ok, err := e.HostClock(ctx, node)
	if err != nil || !ok {
		return obj, err
	}
	attrs := make(map[string]attr.Value, len(obj.Attributes()))
	for k, v := range obj.Attributes() {
		attrs[k] = v
	}
	attrs["clock_offset_ms"] = types.Int64Value(c.Offset.Milliseconds())
	return types.ObjectValueMust(reportedAttrTypes, attrs), nil
}
