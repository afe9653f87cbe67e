package provider

import (
	"fmt"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfversion"
)

func TestQuorumFigures(t *testing.T) {
	// Node majority, Windows Server 2008: floor(N/2)+1 needed.
	nm := map[int64]int{1: 0, 2: 0, 3: 1, 4: 1, 5: 2, 6: 2, 7: 3, 8: 3, 9: 4, 10: 4, 11: 5, 12: 5, 13: 6, 14: 6, 15: 7, 16: 7}
	for n := int64(1); n <= 16; n++ {
		f, _, err := quorumFigures("node_majority", n, false)
		if err != nil || f.TotalVotes != int(n) || f.FailuresTolerated != nm[n] {
			t.Errorf("node_majority %d: %+v %v", n, f, err)
		}
		w, _, err := quorumFigures("node_and_file_share_majority", n, true)
		if err != nil || w.TotalVotes != int(n)+1 || w.VotesNeeded != (int(n)+1)/2+1 {
			t.Errorf("file share majority %d: %+v %v", n, w, err)
		}
		d, _, err := quorumFigures("disk_only", n, true)
		if err != nil || d.TotalVotes != 1 || d.VotesNeeded != 1 || d.FailuresTolerated != int(n)-1 {
			t.Errorf("disk_only %d: %+v %v", n, d, err)
		}
	}
	bad := []struct {
		typ     string
		nodes   int64
		witness bool
		arg     int64
	}{
		{"majority", 3, false, 0},
		{"node_majority", 0, false, 1},
		{"node_majority", 17, false, 1},
		{"node_majority", 3, true, 2},
		{"node_and_disk_majority", 3, false, 2},
	}
	for _, b := range bad {
		if _, arg, err := quorumFigures(b.typ, b.nodes, b.witness); err == nil || arg != b.arg {
			t.Errorf("quorum(%q, %d, %v): arg %d, %v", b.typ, b.nodes, b.witness, arg, err)
		}
	}
}

func figuresValue(total, needed, tolerated int64) knownvalue.Check {
	return knownvalue.ObjectExact(map[string]knownvalue.Check{
		"total_votes":        knownvalue.Int64Exact(total),
		"votes_needed":       knownvalue.Int64Exact(needed),
		"failures_tolerated": knownvalue.Int64Exact(tolerated),
	})
}

func TestAccQuorumFunction(t *testing.T) {
	dir := t.TempDir()
	call := func(args string) string {
		return providerBlock(dir) + fmt.Sprintf("output \"q\" {\n  value = provider::kayo::quorum(%s)\n}\n", args)
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.SkipBelow(tfversion.Version1_8_0)},
		Steps: []resource.TestStep{
			{
				Config: providerBlock(dir) + `
output "nm2"  { value = provider::kayo::quorum("node_majority", 2, false) }
output "nm3"  { value = provider::kayo::quorum("node_majority", 3, false) }
output "nm16" { value = provider::kayo::quorum("node_majority", 16, false) }
output "fs2"  { value = provider::kayo::quorum("node_and_file_share_majority", 2, true) }
output "dk4"  { value = provider::kayo::quorum("node_and_disk_majority", 4, true) }
output "do3"  { value = provider::kayo::quorum("disk_only", 3, true) }
output "tolerated" { value = provider::kayo::quorum("node_majority", 5, false).failures_tolerated }
`,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownOutputValue("nm2", figuresValue(2, 2, 0)),
					statecheck.ExpectKnownOutputValue("nm3", figuresValue(3, 2, 1)),
					statecheck.ExpectKnownOutputValue("nm16", figuresValue(16, 9, 7)),
					statecheck.ExpectKnownOutputValue("fs2", figuresValue(3, 2, 1)),
					statecheck.ExpectKnownOutputValue("dk4", figuresValue(5, 3, 2)),
					statecheck.ExpectKnownOutputValue("do3", figuresValue(1, 1, 2)),
					statecheck.ExpectKnownOutputValue("tolerated", knownvalue.Int64Exact(2)),
				},
			},
			{Config: call(`"majority", 3, false`), PlanOnly: true,
				ExpectError: errRe(`invalid quorum type "majority": allowed values are node_majority,`)},
			{Config: call(`"node_majority", 17, false`), PlanOnly: true,
				ExpectError: errRe(`nodes: 17 is not allowed; allowed: 1 to 16`)},
			{Config: call(`"node_majority", 3, true`), PlanOnly: true,
				ExpectError: errRe(`witness: true is not allowed with type "node_majority"`)},
			{Config: call(`"disk_only", 3, false`), PlanOnly: true,
				ExpectError: errRe(`witness: false is not allowed with type "disk_only", which needs a witness (witness_disk)`)},
		},
	})
}
