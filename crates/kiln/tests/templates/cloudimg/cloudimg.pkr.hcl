# The cloud-image path as packer-maas writes it (ubuntu-cloudimg.pkr.hcl):
# a qcow2 overlay on the base image, OVMF through `qemuargs` pflash drives
# that re-declare every drive (the output disk exactly where Packer puts
# it), the UEFI variables copied by a `null` build of the same run, and a
# NoCloud seed from `cd_content` authorising the build's throwaway key
# (kiln keeps it attached although `qemuargs` drops the default drives).
# It also carries the rest of packer-maas's cloud-image constructs: the
# `packer` block, lookup maps keyed by architecture, VNC options, a
# `customize_script` that defaults to `/dev/null`, a `shell-local`
# post-processor.

packer {
  required_version = ">= 1.7.0"
  required_plugins {
    qemu = {
      version = ">= 1.1.0, < 1.1.2"
      source  = "github.com/hashicorp/qemu"
    }
  }
}

variable "architecture" {
  type    = string
  default = "amd64"
}

variable "customize_script" {
  type    = string
  default = "/dev/null"
}

variable "base_image" {
  type = string
}

variable "ovmf_code" {
  type = string
}

variable "ovmf_vars" {
  type = string
}

variable "greeting" {
  type    = string
  default = "it's built by kiln"
}

locals {
  qemu_machine = {
    "amd64" = "q35"
    "arm64" = "virt"
  }
  user_data = <<-EOT
    #cloud-config
    ssh_authorized_keys:
      - {{ .SSHPublicKey }}
  EOT
}

source "null" "dependencies" {
  communicator = "none"
}

source "qemu" "cloudimg" {
  iso_url          = var.base_image
  iso_checksum     = "none"
  disk_image       = true
  use_backing_file = true
  disk_size        = "6G"
  format           = "qcow2"
  machine_type     = lookup(local.qemu_machine, var.architecture, "")
  memory           = 1024
  cpus             = 2
  headless         = true
  vnc_bind_address = "127.0.0.1"

  qemu_img_args {
    create = ["-F", "qcow2"]
  }
  qemuargs = [
    ["-drive", "if=pflash,format=raw,id=ovmf_code,readonly=on,file=${var.ovmf_code}"],
    ["-drive", "if=pflash,format=raw,id=ovmf_vars,file=OVMF_VARS.fd"],
    ["-drive", "file=output-cloudimg/packer-cloudimg,format=qcow2"],
  ]

  cd_label = "cidata"
  cd_content = {
    "user-data" = local.user_data
    "meta-data" = "instance-id: kiln-vm-test-build\nlocal-hostname: kiln-vm-test\n"
  }

  ssh_username              = "debian"
  ssh_timeout               = "15m"
  ssh_handshake_attempts    = 50
  ssh_clear_authorized_keys = true
  shutdown_command          = "sudo -S shutdown -P now"
}

build {
  name    = "cloudimg.deps"
  sources = ["source.null.dependencies"]

  provisioner "shell-local" {
    inline         = ["cp ${var.ovmf_vars} OVMF_VARS.fd"]
    inline_shebang = "/bin/bash -e"
  }
}

build {
  name    = "cloudimg"
  sources = ["source.qemu.cloudimg"]

  provisioner "shell" {
    inline = [
      "echo \"greeting: $GREETING\"",
      "echo \"$GREETING\" | sudo tee /etc/kiln-greeting >/dev/null",
      "sed 's/^/authorized: /' ~/.ssh/authorized_keys",
      "mkdir -p /tmp/kiln-tree",
    ]
    environment_vars = ["GREETING=${var.greeting}"]
  }

  provisioner "file" {
    source      = "${path.root}/files/motd"
    destination = "/tmp/kiln-motd"
  }

  # A trailing slash uploads the directory's contents, not the directory.
  provisioner "file" {
    source      = "${path.root}/files/tree/"
    destination = "/tmp/kiln-tree"
  }

  provisioner "shell" {
    scripts          = ["${path.root}/scripts/setup.sh", "${path.root}/scripts/report.sh"]
    environment_vars = ["FLAVOUR=vanilla bean", "EMPTY="]
    execute_command  = "{{ .Vars }} sudo -S -E sh -eu '{{ .Path }}'"
  }

  provisioner "shell" {
    expect_disconnect = true
    scripts           = [var.customize_script]
  }

  post-processor "manifest" {
    output = "manifest.json"
    custom_data = {
      purpose = "kiln vm test"
    }
  }

  post-processor "checksum" {
    checksum_types = ["sha256"]
    output         = "output-cloudimg/{{ .BuildName }}.{{ .ChecksumType }}"
  }

  post-processor "shell-local" {
    inline         = ["SOURCE=cloudimg", "test -s output-$${SOURCE}/packer-$${SOURCE}", "echo post-processed $${SOURCE}"]
    inline_shebang = "/bin/bash -e"
  }
}
