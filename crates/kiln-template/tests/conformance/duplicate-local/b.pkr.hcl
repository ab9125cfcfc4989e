locals {
  l = "b"
}
