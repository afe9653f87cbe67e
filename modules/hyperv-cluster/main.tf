# A Hyper-V-style failover cluster as the seed builds it: hosts, the
# cluster, its quorum, shared Kayo FS volumes and clustered VMs.

locals {
  host_names = [for h in var.hosts : h.name]
}

resource "kayo_host" "this" {
  for_each = { for h in var.hosts : h.name => h }

  name             = each.value.name
  address          = each.value.address
  os_edition       = each.value.os_edition
  processor_vendor = each.value.processor_vendor
  processor_model  = each.value.processor_model
  processor_cores  = each.value.processor_cores
  memory_mb        = each.value.memory_mb
  features         = each.value.features
  network_adapters = each.value.network_adapters
  maintenance      = each.value.maintenance
}

resource "kayo_cluster" "this" {
  name                      = var.cluster_name
  nodes                     = [for h in kayo_host.this : h.name]
  static_address            = var.cluster_address
  hypervisor                = var.hypervisor
  heartbeat_timeout_seconds = var.heartbeat_timeout_seconds
}

resource "kayo_quorum" "this" {
  cluster_id    = kayo_cluster.this.id
  type          = var.quorum.type
  witness_disk  = var.quorum.witness_disk
  witness_share = var.quorum.witness_share
}

resource "kayo_shared_volume" "this" {
  for_each = var.volumes

  cluster_id    = kayo_cluster.this.id
  lun           = each.value.lun
  size_gib      = each.value.size_gib
  drive_letter  = each.value.drive_letter
  label         = each.value.label
  block_size    = each.value.block_size
  node_slots    = each.value.node_slots
  force_format  = each.value.force_format
  force_destroy = each.value.force_destroy

  # The quorum's witness disk is a LUN of its own: not a shared volume.
  depends_on = [kayo_quorum.this]
}

resource "kayo_virtual_machine" "this" {
  for_each = var.vms

  cluster_id          = kayo_cluster.this.id
  volume_id           = kayo_shared_volume.this[each.value.volume].id
  name                = each.key
  memory_mb           = each.value.memory_mb
  processor_count     = each.value.processor_count
  vhd                 = each.value.vhd
  network_adapters    = each.value.network_adapters
  owner_node          = each.value.owner_node
  preferred_owners    = each.value.preferred_owners
  possible_owners     = each.value.possible_owners
  anti_affinity_class = each.value.anti_affinity_class
  anti_affinity_mode  = each.value.anti_affinity_mode
  migration           = each.value.migration
  state               = each.value.state

  lifecycle {
    precondition {
      condition     = contains(keys(var.volumes), each.value.volume)
      error_message = "vms[\"${each.key}\"].volume is \"${each.value.volume}\", which is not a key of var.volumes (${join(", ", keys(var.volumes))})."
    }
    precondition {
      condition     = each.value.owner_node == null || contains(local.host_names, coalesce(each.value.owner_node, "-"))
      error_message = "vms[\"${each.key}\"].owner_node is \"${coalesce(each.value.owner_node, "-")}\", which is not one of the hosts (${join(", ", local.host_names)})."
    }
  }
}
