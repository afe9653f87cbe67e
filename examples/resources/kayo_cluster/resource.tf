resource "kayo_cluster" "c" {
  name           = "HVCLUSTER"
  nodes          = [kayo_host.y21.name, kayo_host.y22.name]
  static_address = "192.0.2.50/24"
}

# Failed validation tests refuse the cluster; warnings are listed here.
output "validation" {
  value = [for t in kayo_cluster.c.validation : "${t.result}: ${t.category} / ${t.test}: ${t.message}"]
}
