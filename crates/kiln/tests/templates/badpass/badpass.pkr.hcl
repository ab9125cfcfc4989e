# A wrong `ssh_password` and no key authorised: sshd refuses every attempt,
# and kiln stops after `ssh_handshake_attempts` refusals, long before
# `ssh_timeout`.

variable "base_image" {
  type = string
}

variable "password" {
  type      = string
  sensitive = true
}

source "qemu" "badpass" {
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
    "user-data" = <<-EOT
      #cloud-config
      ssh_pwauth: true
      chpasswd:
        expire: false
        users:
          - name: debian
            password: kiln-the-right-one
            type: text
    EOT
    "meta-data" = "instance-id: kiln-vm-test-badpass\nlocal-hostname: kiln-badpass\n"
  }

  ssh_username           = "debian"
  ssh_password           = var.password
  ssh_handshake_attempts = 3
  ssh_timeout            = "15m"
  shutdown_command       = "sudo shutdown -P now"
}

build {
  sources = ["source.qemu.badpass"]

  provisioner "shell" {
    inline = ["echo 'kiln-test: must not run'"]
  }
}
