# A guest whose sshd never starts: the seed masks it before it is started.
# The SSH wait must report "TCP connected but no SSH banner" at
# `ssh_timeout`, with the last console lines.

variable "base_image" {
  type = string
}

variable "ssh_timeout" {
  type = string
}

source "qemu" "nosshd" {
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
      ssh_authorized_keys:
        - {{ .SSHPublicKey }}
      bootcmd:
        - [systemctl, mask, ssh.service, ssh.socket]
        - [systemctl, --no-block, stop, ssh.service]
      runcmd:
        - [sh, -c, "echo 'kiln-test: sshd is masked' > /dev/ttyS0"]
    EOT
    "meta-data" = "instance-id: kiln-vm-test-nosshd\nlocal-hostname: kiln-nosshd\n"
  }

  ssh_username     = "debian"
  ssh_timeout      = var.ssh_timeout
  shutdown_command = "sudo shutdown -P now"
}

build {
  sources = ["source.qemu.nosshd"]

  provisioner "shell" {
    inline = ["echo 'kiln-test: must not run'"]
  }
}
