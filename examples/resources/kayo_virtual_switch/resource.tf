# "Public": an external switch bound on every node to the host adapter
# declared as "Public" in kayo_host.network_adapters (on a qemu cluster
# each node's agent makes it a bridge enslaving that interface, so the
# nodes' VMs share the physical network). Y-22-2k8x64 binds another one.
resource "kayo_virtual_switch" "public" {
  cluster_id    = kayo_cluster.c.id
  name          = "Public"
  type          = "external"
  adapter       = "Public"
  node_adapters = { "Y-22-2k8x64" = "eth1" }
}

# "Lab": a private switch, VMs of one node only.
resource "kayo_virtual_switch" "lab" {
  cluster_id = kayo_cluster.c.id
  name       = "Lab"
  type       = "private"
}

# A VM adapter names a switch; by id when both are created in one apply
# (the id is unknown until then, so apply checks it).
resource "kayo_virtual_machine" "app" {
  cluster_id       = kayo_cluster.c.id
  volume_id        = kayo_shared_volume.o.id
  name             = "APP01"
  memory_mb        = 1024
  processor_count  = 1
  vhd              = { size_gib = 20, type = "dynamic" }
  network_adapters = [{ switch = kayo_virtual_switch.public.id }, { switch = kayo_virtual_switch.lab.id }]
}
