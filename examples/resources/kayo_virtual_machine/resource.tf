# WEB01 on the seed's cluster, its VHD and configuration file on O:
# (O:\WEB01\WEB01.vhd, O:\WEB01\WEB01.xml), pinned to Y-21-2k8x64.
# Changing owner_node to "Y-22-2k8x64" is an in-place update: the plan
# warns "WEB01 will be live-migrated from Y-21-2k8x64 to Y-22-2k8x64".
resource "kayo_virtual_machine" "web" {
  cluster_id       = kayo_cluster.c.id
  volume_id        = kayo_shared_volume.o.id
  name             = "WEB01"
  memory_mb        = 2048
  processor_count  = 2
  vhd              = { size_gib = 40, type = "dynamic" }
  network_adapters = [{ switch = "Public" }]

  owner_node       = "Y-21-2k8x64" # null: the scheduler decides
  preferred_owners = ["Y-21-2k8x64", "Y-22-2k8x64"]

  anti_affinity_class = "web"
  anti_affinity_mode  = "preferred"
  migration           = "live" # quick when the nodes' processor vendors differ
  state               = "running"
  allow_restart       = false # memory/processor changes need the VM off

  timeouts = {
    create = "10m"
    update = "30m"
    # Wait until the guest took an address (by DHCP from its node's agent)
    # on every adapter whose switch has a subnet; "0" does not wait.
    wait_for_ip = "5m"
  }
}

output "web" {
  value = "${kayo_virtual_machine.web.name} runs on ${kayo_virtual_machine.web.current_node} from ${kayo_virtual_machine.web.vhd_path}"
}

# The guest's address on its first adapter, once it took it (empty on a
# switch without subnet, or while the VM is off).
output "web_ip" {
  value = kayo_virtual_machine.web.network_adapters[0].ip_addresses
}
