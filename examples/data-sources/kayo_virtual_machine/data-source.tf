data "kayo_virtual_machine" "web" {
  cluster_id = "HVCLUSTER"
  name       = "WEB01"
}

output "web_node" {
  value = data.kayo_virtual_machine.web.current_node
}
