locals {
  full = "${local.base}-${var.version}"
}
