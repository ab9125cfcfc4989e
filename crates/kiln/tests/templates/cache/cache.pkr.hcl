# The step cache: a cloud-image build whose three provisioners each leave
# a trace on the disk, the last one a script the test edits. A sensitive
# value is used by the middle step only.

variable "base_image" {
  type = string
}

variable "early" {
  type    = string
  default = "one"
}

variable "token" {
  type      = string
  default   = "kiln-cache-token-0b2f7c"
  sensitive = true
}

locals {
  user_data = <<-EOT
    #cloud-config
    ssh_authorized_keys:
      - {{ .SSHPublicKey }}
  EOT
}

source "qemu" "cache" {
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
    "user-data" = local.user_data
    "meta-data" = "instance-id: kiln-vm-test-cache\nlocal-hostname: kiln-cache\n"
  }

  ssh_username     = "debian"
  ssh_timeout      = "15m"
  shutdown_command = "sudo -S shutdown -P now"
}

build {
  sources = ["source.qemu.cache"]

  provisioner "shell" {
    environment_vars = ["EARLY=${var.early}"]
    inline           = ["echo \"$EARLY\" | sudo tee /var/tmp/early"]
  }

  provisioner "shell" {
    inline = [
      "echo '${var.token}' | sudo tee /var/tmp/token >/dev/null",
      "echo middle | sudo tee /var/tmp/middle",
    ]
  }

  provisioner "shell" {
    script          = "${path.root}/last.sh"
    execute_command = "{{ .Vars }} sudo -S -E sh -eu '{{ .Path }}'"
  }
}
