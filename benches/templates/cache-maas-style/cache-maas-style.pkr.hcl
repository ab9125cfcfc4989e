# The step-cache benchmark's template (benches/cache-maas-style.sh), in the
# shape packer-maas gives its cloud-image builds, so that it runs unmodified
# under Packer 1.6.6 and kiln:
#   - a `null` build prepares what QEMU needs before the image build starts:
#     the NoCloud seed (cloud-localds) and a writable copy of the UEFI
#     variables, both in the template directory;
#   - the `qemu` build re-declares every drive in `qemuargs` (Packer 1.6.6
#     has no firmware options, and any `-drive` drops its default drives):
#     both pflash drives, the output disk and the seed;
#   - password SSH (Packer 1.6.6 cannot put a key into a seed it does not
#     make), four provisioners, and a cheap post-processor.
# The build blocks have no names, so the builds are `null.seed` and
# `qemu.maas` under both tools (`-only=qemu.maas`, as users iterate).
# Run it from this directory: the output disk path in `qemuargs` is
# relative to the working directory, as Packer names it.

source "null" "seed" {
  communicator = "none"
}

source "qemu" "maas" {
  accelerator      = var.accelerator
  machine_type     = "q35"
  cpus             = 2
  memory           = var.memory
  headless         = true
  boot_wait        = "1s"
  disk_image       = true
  use_backing_file = true
  disk_size        = "4G"
  format           = "qcow2"
  iso_url          = var.base_image
  iso_checksum     = var.base_checksum
  qemu_img_args {
    create = ["-F", "qcow2"]
  }
  qemuargs = [
    ["-cpu", "max"],
    ["-drive", "if=pflash,format=raw,id=ovmf_code,readonly=on,file=${var.ovmf_code}"],
    ["-drive", "if=pflash,format=raw,id=ovmf_vars,file=${path.root}/OVMF_VARS.fd"],
    ["-drive", "file=output-maas/packer-maas,format=qcow2,if=virtio"],
    ["-drive", "file=${path.root}/seed.img,format=raw,media=cdrom"],
  ]
  ssh_username           = "debian"
  ssh_password           = var.ssh_password
  ssh_timeout            = var.timeout
  ssh_handshake_attempts = 500
  shutdown_command       = "sudo -S shutdown -P now"
}

build {
  sources = ["source.null.seed"]

  provisioner "shell-local" {
    inline = [
      "cloud-localds ${path.root}/seed.img ${path.root}/user-data ${path.root}/meta-data",
      "cp ${var.ovmf_vars} ${path.root}/OVMF_VARS.fd",
    ]
    inline_shebang = "/bin/bash -e"
  }
}

build {
  sources = ["source.qemu.maas"]

  provisioner "shell" {
    environment_vars = ["DEBIAN_FRONTEND=noninteractive", "STAMP=cache-maas-style"]
    inline = [
      "echo \"$STAMP\" | sudo tee /etc/cache-bench-stamp",
      "sudo install -d -m 0755 /opt/cache-bench",
    ]
  }

  provisioner "file" {
    source      = "${path.root}/files/issue"
    destination = "/tmp/issue"
  }

  provisioner "shell" {
    environment_vars = ["ISSUE_FILE=/tmp/issue"]
    execute_command  = "{{ .Vars }} sudo -S -E sh -eu '{{ .Path }}'"
    scripts          = ["${path.root}/scripts/setup.sh"]
  }

  # The step a user iterates on; the benchmark changes one byte of it.
  provisioner "shell" {
    execute_command = "{{ .Vars }} sudo -S -E sh -eu '{{ .Path }}'"
    scripts         = ["${path.root}/scripts/last.sh"]
  }

  # Cheap on purpose; the benchmark edits the marker to change only this.
  post-processor "shell-local" {
    inline = [
      "echo post-processor marker 0",
      "sha256sum output-maas/packer-maas > output-maas/SHA256SUMS",
    ]
    inline_shebang = "/bin/bash -e"
  }
}
