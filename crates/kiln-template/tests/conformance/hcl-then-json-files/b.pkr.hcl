variable "y" {
  default = "h"
}
locals {
  both = "${var.x}${var.y}"
}
source "null" "n" {
  communicator = "none"
}

build {
  sources = ["source.null.n"]
}
