data "kayo_cluster" "c" {
  name = "HVCLUSTER"
}

output "cluster_nodes" {
  value = data.kayo_cluster.c.nodes
}
