# Every host that is a node of HVCLUSTER.
data "kayo_hosts" "nodes" {
  cluster = "HVCLUSTER"
}

output "node_names" {
  value = data.kayo_hosts.nodes.names
}
