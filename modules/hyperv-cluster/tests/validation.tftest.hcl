# Plan-only runs: each bad variable is refused with the module's own
# message (expect_failures), and nothing is created.

provider "kayo" {}

variables {
  cluster_name    = "HVCLUSTER"
  cluster_address = "192.0.2.50/24"
  hosts = [
    {
      name            = "Y-21-2k8x64"
      address         = "192.0.2.21"
      processor_model = "Xeon E5440"
      processor_cores = 8
      memory_mb       = 32768
      network_adapters = [
        { name = "Public", network = "192.0.2.0/24", address = "192.0.2.21" },
        { name = "Heartbeat", network = "10.10.10.0/24", address = "10.10.10.21" },
      ]
    },
    {
      name            = "Y-22-2k8x64"
      address         = "192.0.2.22"
      processor_model = "Xeon E5440"
      processor_cores = 8
      memory_mb       = 32768
      network_adapters = [
        { name = "Public", network = "192.0.2.0/24", address = "192.0.2.22" },
        { name = "Heartbeat", network = "10.10.10.0/24", address = "10.10.10.22" },
      ]
    },
  ]
  volumes = {
    o = { lun = "lun0", size_gib = 500, drive_letter = "O", label = "VMSTORE" }
  }
  vms = {
    WEB01 = { volume = "o", memory_mb = 2048, vhd = { size_gib = 40 }, owner_node = "Y-21-2k8x64" }
  }
}

run "valid_plan" {
  command = plan

  assert {
    condition     = kayo_cluster.this.name == "HVCLUSTER"
    error_message = "the cluster is not named after var.cluster_name"
  }
  assert {
    condition     = length(kayo_host.this) == 2 && kayo_host.this["Y-22-2k8x64"].processor_vendor == "intel"
    error_message = "two hosts with the default processor vendor were expected"
  }
  assert {
    condition     = kayo_virtual_machine.this["WEB01"].owner_node == "Y-21-2k8x64" && kayo_virtual_machine.this["WEB01"].migration == "live"
    error_message = "WEB01 should be pinned to Y-21-2k8x64 with live migration"
  }
  assert {
    condition     = kayo_quorum.this.type == "node_majority"
    error_message = "the default quorum is node_majority"
  }
}

run "cluster_name_too_long" {
  command = plan
  variables {
    cluster_name = "HVCLUSTER-IS-TOO-LONG"
  }
  expect_failures = [var.cluster_name]
}

run "cluster_address_without_prefix" {
  command = plan
  variables {
    cluster_address = "192.0.2.50"
  }
  expect_failures = [var.cluster_address]
}

run "seventeen_hosts" {
  command = plan
  variables {
    # Written out: OpenTofu allows no function calls in a run's variables.
    hosts = [
      { name = "H0", address = "192.0.2.1", processor_model = "Xeon E5440", processor_cores = 8, memory_mb = 32768, network_adapters = [{ name = "Public", network = "192.0.2.0/24", address = "192.0.2.1" }] },
      { name = "H1", address = "192.0.2.2", processor_model = "Xeon E5440", processor_cores = 8, memory_mb = 32768, network_adapters = [{ name = "Public", network = "192.0.2.0/24", address = "192.0.2.2" }] },
      { name = "H2", address = "192.0.2.3", processor_model = "Xeon E5440", processor_cores = 8, memory_mb = 32768, network_adapters = [{ name = "Public", network = "192.0.2.0/24", address = "192.0.2.3" }] },
      { name = "H3", address = "192.0.2.4", processor_model = "Xeon E5440", processor_cores = 8, memory_mb = 32768, network_adapters = [{ name = "Public", network = "192.0.2.0/24", address = "192.0.2.4" }] },
      { name = "H4", address = "192.0.2.5", processor_model = "Xeon E5440", processor_cores = 8, memory_mb = 32768, network_adapters = [{ name = "Public", network = "192.0.2.0/24", address = "192.0.2.5" }] },
      { name = "H5", address = "192.0.2.6", processor_model = "Xeon E5440", processor_cores = 8, memory_mb = 32768, network_adapters = [{ name = "Public", network = "192.0.2.0/24", address = "192.0.2.6" }] },
      { name = "H6", address = "192.0.2.7", processor_model = "Xeon E5440", processor_cores = 8, memory_mb = 32768, network_adapters = [{ name = "Public", network = "192.0.2.0/24", address = "192.0.2.7" }] },
      { name = "H7", address = "192.0.2.8", processor_model = "Xeon E5440", processor_cores = 8, memory_mb = 32768, network_adapters = [{ name = "Public", network = "192.0.2.0/24", address = "192.0.2.8" }] },
      { name = "H8", address = "192.0.2.9", processor_model = "Xeon E5440", processor_cores = 8, memory_mb = 32768, network_adapters = [{ name = "Public", network = "192.0.2.0/24", address = "192.0.2.9" }] },
      { name = "H9", address = "192.0.2.10", processor_model = "Xeon E5440", processor_cores = 8, memory_mb = 32768, network_adapters = [{ name = "Public", network = "192.0.2.0/24", address = "192.0.2.10" }] },
      { name = "H10", address = "192.0.2.11", processor_model = "Xeon E5440", processor_cores = 8, memory_mb = 32768, network_adapters = [{ name = "Public", network = "192.0.2.0/24", address = "192.0.2.11" }] },
      { name = "H11", address = "192.0.2.12", processor_model = "Xeon E5440", processor_cores = 8, memory_mb = 32768, network_adapters = [{ name = "Public", network = "192.0.2.0/24", address = "192.0.2.12" }] },
      { name = "H12", address = "192.0.2.13", processor_model = "Xeon E5440", processor_cores = 8, memory_mb = 32768, network_adapters = [{ name = "Public", network = "192.0.2.0/24", address = "192.0.2.13" }] },
      { name = "H13", address = "192.0.2.14", processor_model = "Xeon E5440", processor_cores = 8, memory_mb = 32768, network_adapters = [{ name = "Public", network = "192.0.2.0/24", address = "192.0.2.14" }] },
      { name = "H14", address = "192.0.2.15", processor_model = "Xeon E5440", processor_cores = 8, memory_mb = 32768, network_adapters = [{ name = "Public", network = "192.0.2.0/24", address = "192.0.2.15" }] },
      { name = "H15", address = "192.0.2.16", processor_model = "Xeon E5440", processor_cores = 8, memory_mb = 32768, network_adapters = [{ name = "Public", network = "192.0.2.0/24", address = "192.0.2.16" }] },
      { name = "H16", address = "192.0.2.17", processor_model = "Xeon E5440", processor_cores = 8, memory_mb = 32768, network_adapters = [{ name = "Public", network = "192.0.2.0/24", address = "192.0.2.17" }] },
    ]
  }
  expect_failures = [var.hosts]
}

run "host_edition_out_of_range" {
  command = plan
  variables {
    hosts = [{
      name             = "Y-21-2k8x64"
      address          = "192.0.2.21"
      os_edition       = "web"
      processor_model  = "Xeon E5440"
      processor_cores  = 8
      memory_mb        = 32768
      network_adapters = [{ name = "Public", network = "192.0.2.0/24", address = "192.0.2.21" }]
    }]
  }
  expect_failures = [var.hosts]
}

run "quorum_witness_missing" {
  command = plan
  variables {
    quorum = { type = "node_and_disk_majority" }
  }
  expect_failures = [var.quorum]
}

run "quorum_type_unknown" {
  command = plan
  variables {
    quorum = { type = "dynamic" }
  }
  expect_failures = [var.quorum]
}

run "drive_letter_out_of_range" {
  command = plan
  variables {
    volumes = { o = { lun = "lun0", size_gib = 500, drive_letter = "C" } }
  }
  expect_failures = [var.volumes]
}

run "vm_memory_out_of_range" {
  command = plan
  variables {
    vms = { WEB01 = { volume = "o", memory_mb = 16, vhd = { size_gib = 40 } } }
  }
  expect_failures = [var.vms]
}

run "vm_on_unknown_volume" {
  command = plan
  variables {
    vms = { WEB01 = { volume = "p", memory_mb = 2048, vhd = { size_gib = 40 } } }
  }
  expect_failures = [kayo_virtual_machine.this]
}

run "vm_pinned_to_unknown_host" {
  command = plan
  variables {
    vms = { WEB01 = { volume = "o", memory_mb = 2048, vhd = { size_gib = 40 }, owner_node = "Y-99" } }
  }
  expect_failures = [kayo_virtual_machine.this]
}
