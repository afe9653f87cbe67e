terraform {
  required_version = ">= 1.6"
  required_providers {
    kayo = {
      source = "local/kayo/kayo"
    }
  }
}
