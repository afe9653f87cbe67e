# The seed's O: volume: a 500 GiB LUN of the embedded SAN (a sparse image,
# so it costs only what is written), formatted with Kayo FS and mounted on
# every node of HVCLUSTER. Adding a node to kayo_cluster.c mounts it there
# too; removing one unmounts it.
resource "kayo_shared_volume" "o" {
  cluster_id   = kayo_cluster.c.id
  lun          = "lun0" # or an absolute block-device path such as "/dev/sdb"
  size_gib     = 500    # grow in place; shrinking is an error
  label        = "VMSTORE"
  drive_letter = "O"
  block_size   = 4096 # 4096..65536, power of two; a change replaces the volume
  node_slots   = 16   # ≥ the cluster's nodes, ≤ 64; grow in place
}

output "volume" {
  value = "${kayo_shared_volume.o.drive_letter}: (${kayo_shared_volume.o.id}) mounted on ${length(kayo_shared_volume.o.mounts)} nodes, ${kayo_shared_volume.o.free_bytes} bytes free"
}
