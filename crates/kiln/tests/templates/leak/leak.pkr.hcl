# A build whose image would leak: a provisioner plants a private key, the
# build's key stays authorised (its scrub is skipped), and a sensitive
# value lands in a file. The maas-tgz leak gate must fail naming all three.

variable "base_image" {
  type = string
}

variable "api_token" {
  type      = string
  default   = "kiln-leak-token-5d1e9a"
  sensitive = true
}

source "qemu" "leak" {
  iso_url          = var.base_image
  iso_checksum     = "none"
  disk_image       = true
  use_backing_file = true
  disk_size        = "6G"
  format           = "qcow2"
  machine_type     = "q35"
  memory           = 1024
  cpus             = 2
  headless         = true
  efi_boot         = true

  qemu_img_args {
    create = ["-F", "qcow2"]
  }

  cd_label = "cidata"
  cd_content = {
    "user-data" = "#cloud-config\nssh_authorized_keys:\n  - {{ .SSHPublicKey }}\n"
    "meta-data" = "instance-id: kiln-vm-test-leak\nlocal-hostname: kiln-leak\n"
  }

  ssh_username     = "debian"
  ssh_timeout      = "15m"
  shutdown_command = "sudo -S shutdown -P now"
}

build {
  sources = ["source.qemu.leak"]

  provisioner "shell" {
    inline = [
      "ssh-keygen -q -t ed25519 -N '' -C leaked -f ~/.ssh/id_ed25519",
      "echo 'token=${var.api_token}' | sudo tee /etc/app.conf >/dev/null",
    ]
  }

  post-processor "maas-tgz" {
    output     = "output-leak/leak.tar.gz"
    scrub_skip = ["build-key"]
  }
}
