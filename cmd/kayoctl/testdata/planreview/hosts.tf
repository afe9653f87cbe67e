# Shared by every plan-review scenario: three identical hosts.
terraform {
  required_providers {
    kayo = { source = "local/kayo/kayo" }
  }
}

variable "maintenance" {
  type    = set(string)
  default = []
}

resource "kayo_host" "h" {
  for_each         = toset(["21", "22", "23"])
  name             = "Y-${each.key}-2k8x64"
  address          = "192.0.2.${each.key}"
  os_edition       = "enterprise"
  processor_vendor = "intel"
  processor_model  = "Xeon E5440"
  processor_cores  = 8
  memory_mb        = 32768
  features         = ["Hyper-V", "Failover-Clustering"]
  network_adapters = [
    { name = "Public", network = "192.0.2.0/24", address = "192.0.2.${each.key}" },
    { name = "Heartbeat", network = "10.10.10.0/24", address = "10.10.10.${each.key}" },
  ]
  maintenance = contains(var.maintenance, each.key)
}
