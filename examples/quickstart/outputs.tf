output "cluster" {
  description = "The cluster: name, administrative address and nodes."
  value = {
    name           = kayo_cluster.hv.name
    static_address = kayo_cluster.hv.static_address
    nodes          = sort(tolist(kayo_cluster.hv.nodes))
  }
}

output "validation" {
  description = "The cluster validation report, one entry per test."
  value       = kayo_cluster.hv.validation
}

# The same, as a table for people: `terraform output -raw summary`.
output "summary" {
  description = "The cluster and its validation report as a text table."
  value = join("\n", concat(
    [
      format("Cluster %s at %s", kayo_cluster.hv.name, kayo_cluster.hv.static_address),
      "",
      format("  %-14s %-12s %-10s %-12s %6s %9s", "NODE", "ADDRESS", "EDITION", "PROCESSOR", "CORES", "MEMORY"),
    ],
    [
      for h in [kayo_host.y21, kayo_host.y22] : format("  %-14s %-12s %-10s %-12s %6d %6d MB",
      h.name, h.address, h.os_edition, h.processor_model, h.processor_cores, h.memory_mb)
    ],
    [
      "",
      format("Shared volume %s: %s (%s), %d GiB, mounted on %s",
        kayo_shared_volume.o.drive_letter, kayo_shared_volume.o.label, kayo_shared_volume.o.id,
        kayo_shared_volume.o.size_gib,
      join(", ", [for n, s in kayo_shared_volume.o.mounts : "${n} (slot ${s})"])),
      format("Virtual machine %s: %s on %s, VHD %s",
      kayo_virtual_machine.web01.name, kayo_virtual_machine.web01.status, kayo_virtual_machine.web01.current_node, kayo_virtual_machine.web01.vhd_path),
      "",
      "Validation report",
      format("  %-22s %-40s %-8s %s", "CATEGORY", "TEST", "RESULT", "MESSAGE"),
    ],
    [
      for v in kayo_cluster.hv.validation : format("  %-22s %-40s %-8s %s",
      v.category, v.test, v.result, v.message)
    ],
  ))
}
