variable "a" {}
variable "b" {}
locals {
  c = var.nope
}
