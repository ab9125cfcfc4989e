# The installer-ISO shape of packer-maas's templates (ubuntu-flat/lvm,
# rhel, sles, windows), written for kiln's compatibility corpus: every
# construct they use must validate and plan. Not built here (it needs an
# installer ISO); the cloud-image shape builds in the VM tests.

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

variable "iso_path" {
  type    = string
  default = "installer.iso"
}

variable "customize_script" {
  type    = string
  default = "/dev/null"
}

variable "ovmf_suffix" {
  type    = string
  default = "_4M"
}

locals {
  qemu_arch    = { "amd64" = "x86_64", "arm64" = "aarch64" }
  qemu_machine = { "amd64" = "accel=kvm", "arm64" = "virt" }
  qemu_cpu     = { "amd64" = "host", "arm64" = "max" }
  answers = templatefile("${path.root}/http/answers.cfg.pkrtpl", {
    hostname = "kiln-${var.architecture}"
    packages = ["openssh-server", "cloud-init"]
  })
}

source "null" "seeds" {
  communicator = "none"
}

source "qemu" "flat" {
  iso_url          = var.iso_path
  iso_checksum     = "none"
  qemu_binary      = "qemu-system-${lookup(local.qemu_arch, var.architecture, "")}"
  disk_size        = "8G"
  disk_interface   = "sata"
  cdrom_interface  = "virtio-scsi"
  format           = "raw"
  memory           = 2048
  cpus             = 2
  headless         = true
  vnc_bind_address = "0.0.0.0"
  vnc_port_min     = 5900
  vnc_port_max     = 5980
  http_content = {
    "/answers.cfg" = local.answers
    "/meta-data"   = ""
  }
  floppy_files = ["${path.root}/floppy/autounattend.xml"]
  floppy_label = "OEMDRV"
  boot_wait    = "2s"
  boot_command = [
    "<leftCtrlOn>c<leftCtrlOff><wait>",
    "linux /casper/vmlinuz autoinstall ds=nocloud-net;s=http://{{ .HTTPIP }}:{{ .HTTPPort }}/ ---<enter>",
    "<leftAltOn><f2><leftAltOff><wait5s>",
    "initrd /casper/initrd<enter><wait>boot<enter>",
  ]
  qemuargs = [
    ["-machine", "${lookup(local.qemu_machine, var.architecture, "")}"],
    ["-cpu", "${lookup(local.qemu_cpu, var.architecture, "")}"],
    ["-device", "virtio-gpu-pci"],
    ["-drive", "if=pflash,format=raw,id=ovmf_code,readonly=on,file=/usr/share/OVMF/OVMF_CODE${var.ovmf_suffix}.fd"],
    ["-drive", "if=pflash,format=raw,id=ovmf_vars,file=OVMF_VARS.fd"],
    ["-drive", "file=output-flat/packer-flat,if=none,id=drive0,format=raw"],
    ["-device", "virtio-scsi-pci,id=scsi0"],
    ["-device", "scsi-hd,bus=scsi0.0,drive=drive0"],
    ["-drive", "file=seeds-flat.iso,format=raw,cache=none,if=virtio"],
  ]
  ssh_username           = "root"
  ssh_password           = "installer"
  ssh_timeout            = "1h"
  ssh_handshake_attempts = 500
  shutdown_command       = "shutdown -P now"
}

build {
  name    = "flat.deps"
  sources = ["source.null.seeds"]

  provisioner "shell-local" {
    inline = [
      "truncate -s 2m OVMF_VARS.fd",
      "cloud-localds seeds-flat.iso ${path.root}/http/user-data ${path.root}/http/meta-data",
    ]
    inline_shebang = "/bin/bash -e"
  }
}

build {
  name    = "flat.image"
  sources = ["source.qemu.flat"]

  provisioner "shell" {
    environment_vars  = ["DEBIAN_FRONTEND=noninteractive"]
    expect_disconnect = true
    scripts           = [var.customize_script]
  }

  post-processor "shell-local" {
    inline = [
      "IMG_FMT=raw",
      "SOURCE=flat",
      "echo would convert output-$${SOURCE}/packer-$${SOURCE}",
    ]
    inline_shebang = "/bin/bash -e"
  }

  post-processor "compress" {
    output = "output-flat/custom-flat.dd.gz"
  }
}
