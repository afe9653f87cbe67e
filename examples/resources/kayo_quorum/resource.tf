# The seed's two hosts with a file share witness: 3 votes, 2 needed, so the
# cluster survives the loss of either node (a two-node node_majority
# cluster survives none).
resource "kayo_quorum" "q" {
  cluster_id    = kayo_cluster.c.id
  type          = "node_and_file_share_majority"
  witness_share = "\\\\fs01\\HVCLUSTER-witness"
}

# Or a witness disk: a LUN of the embedded SAN, created small when absent.
# resource "kayo_quorum" "q" {
#   cluster_id   = kayo_cluster.c.id
#   type         = "node_and_disk_majority"
#   witness_disk = "quorum0"
# }

output "quorum" {
  value = "${kayo_quorum.q.type}: ${kayo_quorum.q.total_votes} votes, ${kayo_quorum.q.votes_needed} needed, tolerates ${kayo_quorum.q.failures_tolerated} node failure(s); has quorum: ${kayo_quorum.q.has_quorum}"
}
