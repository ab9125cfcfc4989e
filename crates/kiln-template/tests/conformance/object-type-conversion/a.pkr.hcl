variable "disk" {
  type = object({
    size = number
    format = string
  })
  default = {
    size = "10"
    format = "qcow2"
    extra = true
  }
}
locals {
  size_plus = var.disk.size + 1
}
source "null" "n" {
  communicator = "none"
}

build {
  sources = ["source.null.n"]
}
