variables {
  x = "1"
}
variable "x" {}
