terraform {
  required_providers {
    kayo = {
      source = "local/kayo/kayo"
    }
  }
}

# The embedded cluster database and SAN live in data_dir. Several terraform
# runs, kayoctl and node agents may share it; each waits at most lock_timeout
# for another's transaction.
provider "kayo" {
  data_dir     = ".kayo"
  lock_timeout = "30s"
}
