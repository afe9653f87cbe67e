# The two-cluster example applied as a whole: one module called twice
# makes two independent clusters in one cluster database.

provider "kayo" {}

run "two_clusters" {
  module {
    source = "./examples/two-clusters"
  }
  assert {
    condition     = jsonencode(output.production_vm_nodes) == jsonencode({ DB01 = "Y-22-2k8x64", WEB01 = "Y-21-2k8x64" })
    error_message = "production VMs: ${jsonencode(output.production_vm_nodes)}"
  }
  assert {
    condition     = jsonencode(output.lab_vm_nodes) == jsonencode({ TEST01 = "L-31-2k8x64", TEST02 = "L-32-2k8x64", TEST03 = "L-33-2k8x64" })
    error_message = "the lab's VMs, one pinned to each node: ${jsonencode(output.lab_vm_nodes)}"
  }
  assert {
    condition     = jsonencode(output.failures_tolerated) == jsonencode({ lab = 1, production = 1 })
    error_message = "failures tolerated: ${jsonencode(output.failures_tolerated)}"
  }
}
