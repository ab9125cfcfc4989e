locals {
  base = "img-${local.prefix}"
  prefix = "ubuntu"
}

variable "version" {
  default = "22.04"
}
source "null" "n" {
  communicator = "none"
}

build {
  sources = ["source.null.n"]
}
