# A file put on a volume: <volume UUID>:<path>.
terraform import kayo_volume_file.base '6f1c2a4e-8d2b-4c1e-9a57-0b3e2f4d5c6a:templates\base.vhd'
