package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/function"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/quorum"
)

var _ function.Function = (*quorumFunction)(nil)

// NewQuorumFunction is provider::kayo::quorum(type, nodes, witness).
func NewQuorumFunction() function.Function { return &quorumFunction{} }

type quorumFunction struct{}

var quorumFiguresTypes = map[string]attr.Type{
	"total_votes":        types.Int64Type,
	"votes_needed":       types.Int64Type,
	"failures_tolerated": types.Int64Type,
}

func (f *quorumFunction) Metadata(_ context.Context, _ function.MetadataRequest, resp *function.MetadataResponse) {
	resp.Name = "quorum"
}

func (f *quorumFunction) Definition(_ context.Context, _ function.DefinitionRequest, resp *function.DefinitionResponse) {
	resp.Definition = function.Definition{
		Summary: "Vote figures of a quorum configuration",
		MarkdownDescription: "Returns the figures `kayo_quorum` computes — `total_votes`, `votes_needed` and " +
			"`failures_tolerated` — for a quorum type, a node count and whether a witness is configured, with " +
			"Windows Server 2008's static vote arithmetic (one vote per node, one for a witness; `disk_only`: " +
			"the disk's vote only). Use it in modules to check a design before any cluster exists, e.g. " +
			"`provider::kayo::quorum(\"node_majority\", 3, false).failures_tolerated` is 1.",
		Parameters: []function.Parameter{
			function.StringParameter{
				Name:                "type",
				MarkdownDescription: "The quorum type: " + quorumTypesMarkdown() + ".",
			},
			function.Int64Parameter{
				Name:                "nodes",
				MarkdownDescription: fmt.Sprintf("The number of cluster nodes, %d to %d.", quorum.MinNodes, quorum.MaxNodes),
			},
			function.BoolParameter{
				Name: "witness",
				MarkdownDescription: "Whether a witness (disk or file share) is configured: `true` for " +
					"`node_and_disk_majority`, `node_and_file_share_majority` and `disk_only`; `false` " +
					"for `node_majority`.",
			},
		},
		Return: function.ObjectReturn{AttributeTypes: quorumFiguresTypes},
	}
}

func (f *quorumFunction) Run(ctx context.Context, req function.RunRequest, resp *function.RunResponse) {
	var typ string
	var nodes int64
	var witness bool
	resp.Error = function.ConcatFuncErrors(req.Arguments.Get(ctx, &typ, &nodes, &witness))
	if resp.Error != nil {
		return
	}
	figures, argIndex, err := quorumFigures(typ, nodes, witness)
	if err != nil {
		resp.Error = function.NewArgumentFuncError(argIndex, err.Error())
		return
	}
	obj, diags := types.ObjectValue(quorumFiguresTypes, map[string]attr.Value{
		"total_votes":        types.Int64Value(int64(figures.TotalVotes)),
		"votes_needed":       types.Int64Value(int64(figures.VotesNeeded)),
		"failures_tolerated": types.Int64Value(int64(figures.FailuresTolerated)),
	})
	resp.Error = function.ConcatFuncErrors(resp.Error, function.FuncErrorFromDiags(ctx, diags))
	if resp.Error != nil {
		return
	}
	resp.Error = function.ConcatFuncErrors(resp.Error, resp.Result.Set(ctx, obj))
}

// quorumFigures computes the figures, or an error and the index of the
// argument at fault; the messages name the argument, the bad value and
// what is allowed.
func quorumFigures(typ string, nodes int64, witness bool) (quorum.Figures, int64, error) {
	t, err := quorum.ParseType(typ)
	if err != nil {
		return quorum.Figures{}, 0, err
	}
	if nodes < quorum.MinNodes || nodes > quorum.MaxNodes {
		return quorum.Figures{}, 1, fmt.Errorf("nodes: %d is not allowed; allowed: %d to %d (a cluster's node count)",
			nodes, quorum.MinNodes, quorum.MaxNodes)
	}
	if t.NeedsWitness() != witness {
		if witness {
			return quorum.Figures{}, 2, fmt.Errorf("witness: true is not allowed with type %q, which has no witness; "+
				"allowed: false, or a type with a witness (%q, %q, %q)", t, quorum.NodeAndDiskMajority,
				quorum.NodeAndFileShareMajority, quorum.DiskOnly)
		}
		return quorum.Figures{}, 2, fmt.Errorf("witness: false is not allowed with type %q, which needs a witness (%s); allowed: true",
			t, t.WitnessAttribute())
	}
	fig, err := quorum.Compute(quorum.Config{Type: t, Nodes: int(nodes), Witness: witness})
	return fig, 0, err
}
