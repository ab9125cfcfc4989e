# `communicator = "none"`: no SSH; the guest powers itself off once
# cloud-init has run, and kiln waits for that within `shutdown_timeout`.

variable "base_image" {
  type = string
}

source "qemu" "selfstop" {
  iso_url          = var.base_image
  iso_checksum     = "none"
  disk_image       = true
  use_backing_file = true
  efi_boot         = true
  machine_type     = "q35"
  memory           = 1024
  cpus             = 2
  headless         = true

  communicator     = "none"
  shutdown_timeout = "10m"

  cd_label = "cidata"
  cd_content = {
    "user-data" = <<-EOT
      #cloud-config
      runcmd:
        - [sh, -c, "echo 'kiln-test: powering off' > /dev/ttyS0"]
      power_state:
        mode: poweroff
        delay: now
        message: "kiln-test: power_state"
    EOT
    "meta-data" = "instance-id: kiln-vm-test-selfstop\nlocal-hostname: kiln-selfstop\n"
  }
}

build {
  sources = ["source.qemu.selfstop"]

  # Needs no communicator.
  provisioner "shell-local" {
    inline = ["echo \"local: $PACKER_BUILD_NAME via $PACKER_BUILDER_TYPE\""]
  }
}
