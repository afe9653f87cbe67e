output "cluster" {
  description = "The cluster: id, name, administrative address, nodes (sorted) and its validation report."
  value = {
    id             = kayo_cluster.this.id
    name           = kayo_cluster.this.name
    static_address = kayo_cluster.this.static_address
    nodes          = sort(tolist(kayo_cluster.this.nodes))
    validation     = kayo_cluster.this.validation
  }
}

output "quorum" {
  description = "The quorum's type and vote figures: total_votes, votes_needed, failures_tolerated, has_quorum."
  value = {
    type               = kayo_quorum.this.type
    total_votes        = kayo_quorum.this.total_votes
    votes_needed       = kayo_quorum.this.votes_needed
    failures_tolerated = kayo_quorum.this.failures_tolerated
    has_quorum         = kayo_quorum.this.has_quorum
  }
}

output "volumes" {
  description = "The shared volumes by key: id (UUID), drive letter, label and mounts (node => slot)."
  value = {
    for k, v in kayo_shared_volume.this : k => {
      id           = v.id
      drive_letter = v.drive_letter
      label        = v.label
      mounts       = v.mounts
    }
  }
}

output "vms" {
  description = "The VMs by name: id, the node each runs on, status and VHD path."
  value = {
    for k, v in kayo_virtual_machine.this : k => {
      id           = v.id
      current_node = v.current_node
      status       = v.status
      vhd_path     = v.vhd_path
    }
  }
}

output "vm_nodes" {
  description = "The node each VM runs on, by VM name."
  value       = { for k, v in kayo_virtual_machine.this : k => v.current_node }
}
