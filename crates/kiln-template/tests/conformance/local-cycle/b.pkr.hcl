locals {
  b = local.a
}
