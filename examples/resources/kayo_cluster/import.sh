# A cluster is imported by its name.
terraform import kayo_cluster.c HVCLUSTER
