# A packer-maas-style cloud-image build that Packer 1.6.6 and kiln both run:
# a null build prepares the seed ISO and the OVMF variables copy, and the
# qemu build re-declares every drive in qemuargs, as packer-maas does.

source "null" "dependencies" {
  communicator = "none"
}

source "qemu" "cloudimg" {
  accelerator      = var.accelerator
  machine_type     = "q35"
  boot_wait        = "1s"
  cpus             = 2
  memory           = var.memory
  disk_image       = true
  use_backing_file = true
  disk_size        = "6G"
  format           = "qcow2"
  headless         = true
  iso_url          = var.base_image
  iso_checksum     = var.base_checksum
  qemu_img_args {
    create = ["-F", "qcow2"]
  }
  qemuargs = [
    ["-cpu", "max"],
    ["-drive", "if=pflash,format=raw,id=ovmf_code,readonly=on,file=${var.ovmf_code}"],
    ["-drive", "if=pflash,format=raw,id=ovmf_vars,file=OVMF_VARS.fd"],
    ["-drive", "file=output-cloudimg/packer-cloudimg,format=qcow2,if=virtio"],
    ["-drive", "file=seeds-cloudimg.iso,format=raw,media=cdrom"],
  ]
  shutdown_command       = "sudo -S shutdown -P now"
  ssh_handshake_attempts = 500
  ssh_username           = var.ssh_username
  ssh_password           = var.ssh_password
  ssh_timeout            = var.timeout
  ssh_wait_timeout       = var.timeout
}

build {
  name    = "cloudimg.deps"
  sources = ["source.null.dependencies"]

  provisioner "shell-local" {
    inline = [
      "cp ${var.ovmf_vars} OVMF_VARS.fd",
      "genisoimage -quiet -output seeds-cloudimg.iso -volid cidata -joliet -rock ${path.root}/user-data ${path.root}/meta-data",
    ]
    inline_shebang = "/bin/bash -e"
  }
}

build {
  name    = "cloudimg.image"
  sources = ["source.qemu.cloudimg"]

  provisioner "shell" {
    environment_vars = ["DEBIAN_FRONTEND=noninteractive", "GREETING=built by a bench"]
    inline = [
      "echo \"$GREETING\" | sudo tee /etc/kiln-greeting",
      "sudo mkdir -p /opt/kiln",
    ]
  }

  provisioner "file" {
    source      = "${path.root}/files/motd"
    destination = "/tmp/motd"
  }

  provisioner "shell" {
    environment_vars = ["MOTD_SOURCE=/tmp/motd"]
    execute_command  = "{{ .Vars }} sudo -S -E sh -eux '{{ .Path }}'"
    scripts          = ["${path.root}/scripts/setup.sh"]
  }

  provisioner "shell" {
    execute_command = "{{ .Vars }} sudo -S -E sh -eux '{{ .Path }}'"
    scripts         = ["${path.root}/scripts/cleanup.sh"]
  }

  post-processor "manifest" {
    output     = "manifest.json"
    strip_path = true
  }

  post-processor "checksum" {
    checksum_types = ["sha256"]
    output         = "output-cloudimg/{{.BuildName}}.{{.ChecksumType}}"
  }
}
