# Check a design before any cluster exists.
locals {
  two_nodes_plain   = provider::kayo::quorum("node_majority", 2, false)               # 2 votes, 2 needed, tolerates 0
  two_nodes_witness = provider::kayo::quorum("node_and_file_share_majority", 2, true) # 3 votes, 2 needed, tolerates 1
}

output "tolerated" {
  value = {
    plain   = local.two_nodes_plain.failures_tolerated
    witness = local.two_nodes_witness.failures_tolerated
  }
}
