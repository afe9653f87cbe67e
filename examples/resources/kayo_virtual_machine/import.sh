# A VM is imported by cluster/name.
terraform import kayo_virtual_machine.web HVCLUSTER/WEB01
