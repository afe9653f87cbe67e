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
      "Validation report",
      format("  %-22s %-40s %-8s %s", "CATEGORY", "TEST", "RESULT", "MESSAGE"),
    ],
    [
      for v in kayo_cluster.hv.validation : format("  %-22s %-40s %-8s %s",
      v.category, v.test, v.result, v.message)
    ],
  ))
}
