# The two-cluster example applied as a whole: one module called twice
# makes two independent clusters in one cluster database.

provider "kayo" {}

run "two_clusters" {
  module {
    source = "./examples/two-clusters"
  }
  assert {
    condition     = output.production_vm_nodes == { DB01 = "Y-22-2k8x64", WEB01 = "Y-21-2k8x64" }
    error_message = "production VMs: ${jsonencode(output.production_vm_nodes)}"
  }
  assert {
    condition     = length(distinct(values(output.lab_vm_nodes))) == 3
    error_message = "the lab's anti-affinity class should spread its 3 VMs over 3 nodes: ${jsonencode(output.lab_vm_nodes)}"
  }
  assert {
    condition     = output.failures_tolerated == { production = 1, lab = 1 }
    error_message = "failures tolerated: ${jsonencode(output.failures_tolerated)}"
  }
}
