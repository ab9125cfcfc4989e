variable "x" {
  default = "a"
}

locals {
  y = [1, 2
}
