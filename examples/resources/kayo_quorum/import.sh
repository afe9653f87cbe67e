# A quorum configuration is imported by its cluster's name. A cluster
# without a kayo_quorum imports as its implicit node_majority.
terraform import kayo_quorum.q HVCLUSTER
