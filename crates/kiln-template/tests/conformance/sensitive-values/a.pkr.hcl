variable "password" {
  type      = string
  default   = "hunter2"
  sensitive = true
}
variable "user" {
  default = "ubuntu"
}
locals {
  login = "${var.user}:${var.password}"
  plain = "${var.user}!"
}
local "token" {
  expression = "t0k3n"
  sensitive  = true
}
