# Quickstart: the seed's two identical Windows Server 2008 hosts formed into
# a failover cluster. `make demo` runs `init` and `apply` of this directory.
#
# The cluster database lives in the provider's data_dir: ".kayo" in the
# working directory unless KAYO_DATA_DIR (or data_dir below) says otherwise.

terraform {
  required_providers {
    kayo = {
      source = "local/kayo/kayo"
    }
  }
}

provider "kayo" {
  lock_timeout = "30s"
}

# Two identical hosts, as the seed's guide asks: same edition, processor,
# cores, memory, features and networks.
resource "kayo_host" "y21" {
  name             = "Y-21-2k8x64"
  address          = "192.0.2.21"
  os_edition       = "enterprise"
  processor_vendor = "intel"
  processor_model  = "Xeon E5440"
  processor_cores  = 8
  memory_mb        = 32768
  features         = ["Hyper-V", "Failover-Clustering"]
  network_adapters = [
    { name = "Public", network = "192.0.2.0/24", address = "192.0.2.21" },
    { name = "Heartbeat", network = "10.10.10.0/24", address = "10.10.10.21" },
  ]
  maintenance = false
}

resource "kayo_host" "y22" {
  name             = "Y-22-2k8x64"
  address          = "192.0.2.22"
  os_edition       = "enterprise"
  processor_vendor = "intel"
  processor_model  = "Xeon E5440"
  processor_cores  = 8
  memory_mb        = 32768
  features         = ["Hyper-V", "Failover-Clustering"]
  network_adapters = [
    { name = "Public", network = "192.0.2.0/24", address = "192.0.2.22" },
    { name = "Heartbeat", network = "10.10.10.0/24", address = "10.10.10.22" },
  ]
  maintenance = false
}

resource "kayo_cluster" "hv" {
  name                      = "HVCLUSTER"
  nodes                     = [kayo_host.y21.name, kayo_host.y22.name]
  static_address            = "192.0.2.50/24"
  hypervisor                = "simulator"
  heartbeat_timeout_seconds = 10
}
