# The state every scenario plans against: HVCLUSTER on three nodes with
# node majority (one failure tolerated), volumes O: and P:, four VMs.
resource "kayo_cluster" "hv" {
  name           = "HVCLUSTER"
  nodes          = [for h in kayo_host.h : h.name]
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

resource "kayo_shared_volume" "p" {
  cluster_id   = kayo_cluster.hv.id
  lun          = "lun1"
  size_gib     = 100
  label        = "SCRATCH"
  drive_letter = "P"
}

resource "kayo_virtual_machine" "web01" {
  cluster_id = kayo_cluster.hv.id
  volume_id  = kayo_shared_volume.o.id
  name       = "WEB01"
  memory_mb  = 2048
  vhd        = { size_gib = 40 }
  owner_node = "Y-21-2k8x64"
}

resource "kayo_virtual_machine" "db01" {
  cluster_id = kayo_cluster.hv.id
  volume_id  = kayo_shared_volume.o.id
  name       = "DB01"
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

resource "kayo_virtual_machine" "tmp01" {
  cluster_id = kayo_cluster.hv.id
  volume_id  = kayo_shared_volume.p.id
  name       = "TMP01"
  memory_mb  = 512
  vhd        = { size_gib = 10 }
  owner_node = "Y-21-2k8x64"
}
