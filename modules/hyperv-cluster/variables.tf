variable "cluster_name" {
  description = "The cluster's NetBIOS name (1-15 letters, digits and hyphens), e.g. HVCLUSTER. Changing it replaces the cluster."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9-]{0,14}$", var.cluster_name))
    error_message = "cluster_name must be a NetBIOS name: 1-15 letters, digits and hyphens, starting with a letter or digit."
  }
}

variable "cluster_address" {
  description = "The cluster's administrative IP address in CIDR form, inside one of the hosts' networks, e.g. 192.0.2.50/24."
  type        = string

  validation {
    condition     = can(cidrhost(var.cluster_address, 0)) && length(split("/", var.cluster_address)) == 2
    error_message = "cluster_address must be an IP address with its prefix length, such as 192.0.2.50/24."
  }
}

variable "hosts" {
  description = "The cluster's hosts (1-16) and their declared facts: name, management address, edition, processor, memory, features and network adapters (at least two for a cluster node). maintenance = true drains a host."
  type = list(object({
    name             = string
    address          = string
    os_edition       = optional(string, "enterprise")
    processor_vendor = optional(string, "intel")
    processor_model  = string
    processor_cores  = number
    memory_mb        = number
    features         = optional(set(string), ["Hyper-V", "Failover-Clustering"])
    network_adapters = list(object({
      name    = string
      network = string
      address = string
    }))
    maintenance = optional(bool, false)
  }))

  validation {
    condition     = length(var.hosts) >= 1 && length(var.hosts) <= 16
    error_message = "hosts must list 1 to 16 hosts: a failover cluster has at most 16 nodes."
  }
  validation {
    condition     = length(distinct([for h in var.hosts : lower(h.name)])) == length(var.hosts)
    error_message = "hosts must have distinct names."
  }
  validation {
    condition     = alltrue([for h in var.hosts : contains(["standard", "enterprise", "datacenter"], h.os_edition)])
    error_message = "hosts[*].os_edition must be standard, enterprise or datacenter."
  }
  validation {
    condition     = alltrue([for h in var.hosts : contains(["intel", "amd"], h.processor_vendor)])
    error_message = "hosts[*].processor_vendor must be intel or amd."
  }
  validation {
    condition     = alltrue([for h in var.hosts : h.memory_mb >= 512 && h.processor_cores >= 1])
    error_message = "hosts[*].memory_mb must be at least 512 and processor_cores at least 1."
  }
}

variable "hypervisor" {
  description = "What runs the VMs: simulator (the embedded lab) or qemu (real VMs run by the node agents)."
  type        = string
  default     = "simulator"

  validation {
    condition     = contains(["simulator", "qemu"], var.hypervisor)
    error_message = "hypervisor must be simulator or qemu."
  }
}

variable "heartbeat_timeout_seconds" {
  description = "A node silent this long is declared down and its VMs fail over."
  type        = number
  default     = 10

  validation {
    condition     = var.heartbeat_timeout_seconds >= 1 && var.heartbeat_timeout_seconds <= 3600
    error_message = "heartbeat_timeout_seconds must be between 1 and 3600."
  }
}

variable "quorum" {
  description = "The quorum: type (node_majority, node_and_disk_majority, node_and_file_share_majority, disk_only) and the witness the type needs (witness_disk, a LUN name; or witness_share, a UNC path)."
  type = object({
    type          = string
    witness_disk  = optional(string)
    witness_share = optional(string)
  })
  default = { type = "node_majority" }

  validation {
    condition     = contains(["node_majority", "node_and_disk_majority", "node_and_file_share_majority", "disk_only"], var.quorum.type)
    error_message = "quorum.type must be node_majority, node_and_disk_majority, node_and_file_share_majority or disk_only."
  }
  validation {
    condition = (
      contains(["node_and_disk_majority", "disk_only"], var.quorum.type) ? var.quorum.witness_disk != null && var.quorum.witness_share == null :
      var.quorum.type == "node_and_file_share_majority" ? var.quorum.witness_share != null && var.quorum.witness_disk == null :
      var.quorum.witness_disk == null && var.quorum.witness_share == null
    )
    error_message = "quorum needs exactly the witness its type uses: witness_disk for node_and_disk_majority and disk_only, witness_share for node_and_file_share_majority, none for node_majority."
  }
}

variable "volumes" {
  description = "Shared Kayo FS volumes, by a key VMs refer to: the LUN, size, label, drive letter and layout. Every node mounts each at its drive letter."
  type = map(object({
    lun           = string
    size_gib      = number
    drive_letter  = string
    label         = optional(string)
    block_size    = optional(number)
    node_slots    = optional(number)
    force_format  = optional(bool, false)
    force_destroy = optional(bool, false)
  }))

  validation {
    condition     = length(var.volumes) >= 1
    error_message = "volumes must hold at least one volume: the VMs' files live on a shared volume."
  }
  validation {
    condition     = alltrue([for v in var.volumes : can(regex("^[D-Z]$", v.drive_letter))])
    error_message = "volumes[*].drive_letter must be one upper-case letter from D to Z."
  }
  validation {
    condition     = length(distinct([for v in var.volumes : v.drive_letter])) == length(var.volumes)
    error_message = "volumes must have distinct drive letters: every node mounts every volume."
  }
  validation {
    condition     = alltrue([for v in var.volumes : v.size_gib >= 1 && v.size_gib <= 65536])
    error_message = "volumes[*].size_gib must be between 1 and 65536 (64 TiB)."
  }
}

variable "vms" {
  description = "Clustered VMs by name: the volume key holding their files, memory, processors, VHD, adapters and placement (owner_node pins; preferred_owners, possible_owners, anti-affinity guide the scheduler)."
  type = map(object({
    volume              = string
    memory_mb           = number
    processor_count     = optional(number, 1)
    vhd                 = object({ size_gib = number, type = optional(string, "dynamic") })
    network_adapters    = optional(list(object({ switch = string })), [{ switch = "Public" }])
    owner_node          = optional(string)
    preferred_owners    = optional(list(string))
    possible_owners     = optional(set(string))
    anti_affinity_class = optional(string)
    anti_affinity_mode  = optional(string, "preferred")
    migration           = optional(string, "live")
    state               = optional(string, "running")
  }))
  default = {}

  validation {
    condition     = alltrue([for n, v in var.vms : v.memory_mb >= 32 && v.memory_mb <= 1048576])
    error_message = "vms[*].memory_mb must be between 32 and 1048576."
  }
  validation {
    condition     = alltrue([for n, v in var.vms : contains(["live", "quick"], v.migration) && contains(["running", "off"], v.state)])
    error_message = "vms[*].migration must be live or quick, and state running or off."
  }
}
