# A shared volume is imported by its volume UUID ...
terraform import kayo_shared_volume.o 0b847323-2807-4284-9469-f5062d4ce69b
# ... or by cluster and drive letter.
terraform import kayo_shared_volume.o HVCLUSTER/O
