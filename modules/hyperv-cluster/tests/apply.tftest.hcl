# Apply runs against the embedded default: the provider's data_dir comes
# from KAYO_DATA_DIR (a temporary directory of scripts/module-test.sh).
# Three nodes and a file-share witness; two volumes; three VMs.

provider "kayo" {}

variables {
  cluster_name    = "MODCLUSTER"
  cluster_address = "192.0.2.60/24"
  hosts = [for i in [31, 32, 33] : {
    name            = "Y-${i}-2k8x64"
    address         = "192.0.2.${i}"
    processor_model = "Xeon E5440"
    processor_cores = 8
    memory_mb       = 16384
    network_adapters = [
      { name = "Public", network = "192.0.2.0/24", address = "192.0.2.${i}" },
      { name = "Heartbeat", network = "10.10.10.0/24", address = "10.10.10.${i}" },
    ]
  }]
  quorum = { type = "node_majority" }
  volumes = {
    o = { lun = "modlun0", size_gib = 100, drive_letter = "O", label = "VMSTORE" }
    p = { lun = "modlun1", size_gib = 50, drive_letter = "P" }
  }
  vms = {
    WEB01 = { volume = "o", memory_mb = 2048, vhd = { size_gib = 20 }, owner_node = "Y-31-2k8x64" }
    DB01  = { volume = "p", memory_mb = 4096, vhd = { size_gib = 20, type = "fixed" }, owner_node = "Y-32-2k8x64", state = "off" }
    APP01 = { volume = "o", memory_mb = 1024, vhd = { size_gib = 10 }, preferred_owners = ["Y-33-2k8x64"] }
  }
}

run "create" {
  assert {
    condition     = output.cluster.name == "MODCLUSTER" && join(",", output.cluster.nodes) == "Y-31-2k8x64,Y-32-2k8x64,Y-33-2k8x64"
    error_message = "cluster output: ${jsonencode(output.cluster.nodes)}"
  }
  assert {
    condition     = alltrue([for t in output.cluster.validation : t.result == "passed"])
    error_message = "three identical hosts should pass every validation test"
  }
  assert {
    condition     = output.quorum.total_votes == 3 && output.quorum.failures_tolerated == 1 && output.quorum.has_quorum
    error_message = "node_majority of 3: 3 votes, 1 failure tolerated; got ${jsonencode(output.quorum)}"
  }
  assert {
    condition     = length(output.volumes.o.mounts) == 3 && output.volumes.p.drive_letter == "P"
    error_message = "each volume is mounted on the three nodes"
  }
  assert {
    condition     = jsonencode(output.vm_nodes) == jsonencode({ APP01 = "Y-33-2k8x64", DB01 = "Y-32-2k8x64", WEB01 = "Y-31-2k8x64" })
    error_message = "VM placement: ${jsonencode(output.vm_nodes)}"
  }
  assert {
    condition     = output.vms.WEB01.status == "running" && output.vms.DB01.status == "off" && output.vms.WEB01.vhd_path == "O:\\WEB01\\WEB01.vhd"
    error_message = "VM status or path: ${jsonencode(output.vms)}"
  }
}

run "migrate_and_add_witness" {
  variables {
    quorum = { type = "node_and_file_share_majority", witness_share = "\\\\FS01\\witness" }
    vms = {
      WEB01 = { volume = "o", memory_mb = 2048, vhd = { size_gib = 20 }, owner_node = "Y-32-2k8x64" }
      DB01  = { volume = "p", memory_mb = 4096, vhd = { size_gib = 20, type = "fixed" }, owner_node = "Y-32-2k8x64", state = "off" }
      APP01 = { volume = "o", memory_mb = 1024, vhd = { size_gib = 10 }, preferred_owners = ["Y-33-2k8x64"] }
    }
  }
  assert {
    condition     = output.vm_nodes.WEB01 == "Y-32-2k8x64" && kayo_virtual_machine.this["WEB01"].last_migration.type == "live"
    error_message = "WEB01 should have live-migrated to Y-32-2k8x64"
  }
  assert {
    condition     = output.quorum.total_votes == 4 && output.quorum.failures_tolerated == 1
    error_message = "3 nodes and a share witness: 4 votes, 1 failure tolerated; got ${jsonencode(output.quorum)}"
  }
}
