# The rest of the seed: the SAN LUN formatted with Kayo FS and mounted on
# both nodes at O:, and a clustered VM whose VHD lives on it. Changing
# owner_node to "Y-22-2k8x64" is an in-place update that live-migrates
# WEB01; the plan says so.

resource "kayo_shared_volume" "o" {
  cluster_id   = kayo_cluster.hv.id
  lun          = "lun0" # a sparse image in the embedded SAN
  size_gib     = 500
  label        = "VMSTORE"
  drive_letter = "O"
  block_size   = 4096
  node_slots   = 16
}

resource "kayo_virtual_machine" "web01" {
  cluster_id       = kayo_cluster.hv.id
  volume_id        = kayo_shared_volume.o.id
  name             = "WEB01"
  memory_mb        = 2048
  processor_count  = 2
  vhd              = { size_gib = 40, type = "dynamic" }
  network_adapters = [{ switch = "Public" }]
  owner_node       = "Y-21-2k8x64"
  preferred_owners = ["Y-21-2k8x64", "Y-22-2k8x64"]
  migration        = "live"
  state            = "running"
}
