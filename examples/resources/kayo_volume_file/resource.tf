# A template VHD on O: (O:\templates\base.vhd), checked as a valid VHD at
# plan time, and an ISO for DVD drives (O:\isos\tools.iso).
resource "kayo_volume_file" "base" {
  volume_id = kayo_shared_volume.o.id
  path      = "templates\\base.vhd"
  source    = "${path.module}/images/base.vhd" # e.g. guest/template.sh's template.vhd
}

resource "kayo_volume_file" "tools" {
  volume_id = kayo_shared_volume.o.id
  path      = "isos\\tools.iso"
  source    = "${path.module}/images/tools.iso"
}

# Two VMs whose disks are differencing children of the template: each
# records only its own writes; they boot the template's OS from their
# own disks. The template cannot be deleted or replaced while they exist.
resource "kayo_virtual_machine" "app" {
  for_each   = toset(["APP01", "APP02"])
  cluster_id = kayo_cluster.c.id
  volume_id  = kayo_shared_volume.o.id
  name       = each.key
  memory_mb  = 512
  vhd        = { size_gib = 8, source = kayo_volume_file.base.path } # clone = "differencing" (default) or "copy"
  data_disks = [{ size_gib = 20 }]                                   # O:\APP01\APP01-disk1.vhd
  dvd        = { path = kayo_volume_file.tools.path }
  boot_order = ["vhd", "dvd"]
}
