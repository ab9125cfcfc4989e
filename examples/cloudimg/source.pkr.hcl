# kiln's example: customise a cloud image. The guest boots the base image
# through a copy-on-write overlay, reads a NoCloud seed that authorises the
# build's throwaway key, gets provisioned over SSH, and loses that key again
# before it is shut down.

locals {
  image_name = "cloudimg"
  user_data  = <<-EOT
    #cloud-config
    users:
      - name: ${var.ssh_username}
        sudo: ALL=(ALL) NOPASSWD:ALL
        shell: /bin/bash
        ssh_authorized_keys:
          - {{ .SSHPublicKey }}
  EOT
}

source "qemu" "cloudimg" {
  iso_url          = var.base_image
  iso_checksum     = var.base_checksum
  disk_image       = true
  use_backing_file = true
  disk_size        = "6G"
  format           = "qcow2"

  efi_boot     = true
  machine_type = "q35"
  memory       = var.memory
  cpus         = var.cpus
  headless     = true

  cd_label = "cidata"
  cd_content = {
    "user-data" = local.user_data
    "meta-data" = "instance-id: iid-${local.image_name}\nlocal-hostname: ${local.image_name}\n"
  }

  ssh_username              = var.ssh_username
  ssh_timeout               = "15m"
  ssh_clear_authorized_keys = true
  shutdown_command          = "sudo shutdown -P now"
  vm_name                   = "${local.image_name}.qcow2"
}
