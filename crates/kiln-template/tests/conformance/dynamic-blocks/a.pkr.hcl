variable "disks" {
  type    = list(string)
  default = ["vdb", "vdc"]
}

source "null" "n" {
  communicator = "none"
}

build {
  sources = ["source.null.n"]
  provisioner "shell-local" {
    inline = ["true"]
    dynamic "extra" {
      for_each = var.disks
      iterator = d
      content {
        device = "/dev/${d.value}"
        index  = d.key
      }
    }
  }
}
