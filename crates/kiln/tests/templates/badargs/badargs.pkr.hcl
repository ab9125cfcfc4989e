# A `qemuargs` switch QEMU does not know: the build fails as QEMU starts,
# with QEMU's own error.

variable "base_image" {
  type = string
}

source "qemu" "badargs" {
  iso_url          = var.base_image
  iso_checksum     = "none"
  disk_image       = true
  use_backing_file = true
  machine_type     = "q35"
  memory           = 1024
  headless         = true
  communicator     = "none"

  qemuargs = [
    ["-kiln-no-such-switch", "on"],
  ]
}

build {
  sources = ["source.qemu.badargs"]
}
