# A host is imported by its name.
terraform import kayo_host.y21 Y-21-2k8x64
