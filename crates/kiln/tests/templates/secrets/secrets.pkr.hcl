# Failing builds of each kind, each of which quotes a sensitive value in
# its failure: a provisioner, a post-processor, QEMU itself and the SSH
# wait. Nothing kiln prints or records may carry the value.

variable "token" {
  type      = string
  sensitive = true
  default   = "hunter2-secret-7f3a"
}

variable "base_image" {
  type = string
}

source "null" "local" {
  communicator = "none"
}

source "qemu" "qemu" {
  iso_url          = var.base_image
  iso_checksum     = "none"
  disk_image       = true
  use_backing_file = true
  memory           = 256
  headless         = true
  accelerator      = "tcg"
  communicator     = "none"
  output_directory = "output-qemu"
  qemuargs         = [["-kiln-no-such-switch-${var.token}", "on"]]
}

source "qemu" "ssh" {
  iso_url          = var.base_image
  iso_checksum     = "none"
  disk_image       = true
  use_backing_file = true
  memory           = 256
  headless         = true
  accelerator      = "tcg"
  output_directory = "output-ssh"
  ssh_username     = "user-${var.token}"
  ssh_password     = var.token
  ssh_timeout      = "3s"
}

build {
  name    = "prov"
  sources = ["source.null.local"]
  provisioner "shell-local" {
    inline = ["echo token is ${var.token}", "echo stderr has ${var.token} >&2", "exit 3"]
  }
}

build {
  name    = "pp"
  sources = ["source.null.local"]
  post-processor "shell-local" {
    inline = ["echo post-processor says ${var.token}", "exit 4"]
  }
}

build {
  name    = "vm"
  sources = ["source.qemu.qemu", "source.qemu.ssh"]
}
