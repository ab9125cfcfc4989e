locals {
  l = "a"
}
