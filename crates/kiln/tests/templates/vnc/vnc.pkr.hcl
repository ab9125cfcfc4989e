# VNC with Packer's meaning (packer-maas's Ubuntu templates set
# `vnc_bind_address`): a free port in the range, a password set over QMP,
# where to connect printed. The guest boots nothing; the test connects,
# reads the RFB handshake and interrupts the build.

variable "base_image" {
  type = string
}

source "qemu" "vnc" {
  iso_url          = var.base_image
  iso_checksum     = "none"
  disk_image       = true
  use_backing_file = true
  memory           = 256
  headless         = true
  accelerator      = "tcg"
  communicator     = "none"
  vnc_bind_address = "0.0.0.0"
  vnc_use_password = true
  vnc_port_min     = 5990
  vnc_port_max     = 6190
  boot_wait        = "60s"
  boot_command     = ["<wait>"]
}

build {
  sources = ["source.qemu.vnc"]
}
