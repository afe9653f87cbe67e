# Scenario "changes": WEB01 moves to Y-22 (owner_node), DB01 is renamed
# DB02 (a replacement), Y-23 leaves the cluster (APP01 is drained; node
# majority of two tolerates no failure), TMP01 and volume P: go.
resource "kayo_cluster" "hv" {
  name           = "HVCLUSTER"
  nodes          = [kayo_host.h["21"].name, kayo_host.h["22"].name]
  static_address = "192.0.2.50/24"
}

resource "kayo_quorum" "q" {
  cluster_id = kayo_cluster.hv.id
  type       = "node_majority"
}

resource "kayo_shared_volume" "o" {
  cluster_id   = kayo_cluster.hv.id
  lun          = "lun0"
  size_gib     = 500
  label        = "VMSTORE"
  drive_letter = "O"
}

resource "kayo_virtual_machine" "web01" {
  cluster_id = kayo_cluster.hv.id
  volume_id  = kayo_shared_volume.o.id
  name       = "WEB01"
  memory_mb  = 2048
  vhd        = { size_gib = 40 }
  owner_node = "Y-22-2k8x64"
}

resource "kayo_virtual_machine" "db01" {
  cluster_id = kayo_cluster.hv.id
  volume_id  = kayo_shared_volume.o.id
  name       = "DB02"
  memory_mb  = 4096
  vhd        = { size_gib = 40 }
  owner_node = "Y-22-2k8x64"
}

resource "kayo_virtual_machine" "app01" {
  cluster_id       = kayo_cluster.hv.id
  volume_id        = kayo_shared_volume.o.id
  name             = "APP01"
  memory_mb        = 1024
  vhd              = { size_gib = 20 }
  preferred_owners = ["Y-23-2k8x64"]
}
