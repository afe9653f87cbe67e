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
}
