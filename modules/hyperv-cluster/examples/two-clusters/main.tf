# Two clusters from one module: the seed's HVCLUSTER on Y-21/Y-22 with a
# file-share witness, and a three-node LABCLUSTER with node majority.

terraform {
  required_providers {
    kayo = {
      source = "local/kayo/kayo"
    }
  }
}

provider "kayo" {
  lock_timeout = "30s"
}

locals {
  # Identical hosts, as cluster validation asks: only names and addresses differ.
  host = {
    processor_model = "Xeon E5440"
    processor_cores = 8
    memory_mb       = 32768
  }
}

module "production" {
  source = "../.."

  cluster_name    = "HVCLUSTER"
  cluster_address = "192.0.2.50/24"
  hosts = [for i in [21, 22] : merge(local.host, {
    name    = "Y-${i}-2k8x64"
    address = "192.0.2.${i}"
    network_adapters = [
      { name = "Public", network = "192.0.2.0/24", address = "192.0.2.${i}" },
      { name = "Heartbeat", network = "10.10.10.0/24", address = "10.10.10.${i}" },
    ]
  })]
  quorum = { type = "node_and_file_share_majority", witness_share = "\\\\FS01\\witness" }
  volumes = {
    o = { lun = "lun0", size_gib = 500, drive_letter = "O", label = "VMSTORE" }
  }
  vms = {
    WEB01 = { volume = "o", memory_mb = 2048, processor_count = 2, vhd = { size_gib = 40 }, owner_node = "Y-21-2k8x64" }
    DB01  = { volume = "o", memory_mb = 8192, processor_count = 4, vhd = { size_gib = 100, type = "fixed" }, owner_node = "Y-22-2k8x64" }
  }
}

module "lab" {
  source = "../.."

  cluster_name    = "LABCLUSTER"
  cluster_address = "198.51.100.50/24"
  hosts = [for i in [31, 32, 33] : merge(local.host, {
    name    = "L-${i}-2k8x64"
    address = "198.51.100.${i}"
    network_adapters = [
      { name = "Public", network = "198.51.100.0/24", address = "198.51.100.${i}" },
      { name = "Heartbeat", network = "10.20.20.0/24", address = "10.20.20.${i}" },
    ]
  })]
  volumes = {
    l = { lun = "lablun0", size_gib = 200, drive_letter = "L", label = "LABSTORE" }
  }
  # One VM per node, pinned: the scheduler alone may put VMs created in one
  # apply on one node even with required anti-affinity (they are placed
  # concurrently).
  vms = {
    for i, n in ["TEST01", "TEST02", "TEST03"] : n => {
      volume              = "l"
      memory_mb           = 1024
      vhd                 = { size_gib = 20 }
      owner_node          = "L-${31 + i}-2k8x64"
      anti_affinity_class = "test"
    }
  }
}

output "production_vm_nodes" {
  description = "Where each VM of HVCLUSTER runs."
  value       = module.production.vm_nodes
}

output "lab_vm_nodes" {
  description = "Where each VM of LABCLUSTER runs (one per node)."
  value       = module.lab.vm_nodes
}

output "failures_tolerated" {
  description = "Node failures each cluster tolerates."
  value = {
    production = module.production.quorum.failures_tolerated
    lab        = module.lab.quorum.failures_tolerated
  }
}
