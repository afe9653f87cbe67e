# A virtual switch is imported as cluster/name.
terraform import kayo_virtual_switch.public HVCLUSTER/Public
