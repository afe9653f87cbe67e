# `make demo HYPERVISOR=qemu` copies this override file next to
# examples/quickstart: the same cluster runs the qemu driver, and WEB01 is
# the project's small test guest (guest/build.sh), which needs no more
# than 128 MiB and one processor. Its disk is still the dynamic VHD on O:,
# served to QEMU over NBD by the node agents (`kayoctl agent`, one per
# host, which the demo starts). The guest has no network adapters.

resource "kayo_cluster" "hv" {
  hypervisor = "qemu"
}

resource "kayo_virtual_machine" "web01" {
  memory_mb        = 128
  processor_count  = 1
  vhd              = { size_gib = 1, type = "dynamic" }
  network_adapters = []
}
