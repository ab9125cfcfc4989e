# QEMU killed from outside while a provisioner runs: the build must fail at
# once with QEMU's exit status, and clean up.

variable "base_image" {
  type = string
}

source "qemu" "killed" {
  iso_url          = var.base_image
  iso_checksum     = "none"
  disk_image       = true
  use_backing_file = true
  efi_boot         = true
  machine_type     = "q35"
  memory           = 1024
  cpus             = 2
  headless         = true

  cd_label = "cidata"
  cd_content = {
    "user-data" = "#cloud-config\nssh_authorized_keys:\n  - {{ .SSHPublicKey }}\n"
    "meta-data" = "instance-id: kiln-vm-test-killed\nlocal-hostname: kiln-killed\n"
  }

  ssh_username     = "debian"
  ssh_timeout      = "15m"
  shutdown_command = "sudo shutdown -P now"
}

build {
  sources = ["source.qemu.killed"]

  provisioner "shell" {
    inline = [
      "echo 'kiln-test: provisioning, kill QEMU now'",
      "sleep 600",
    ]
  }
}
