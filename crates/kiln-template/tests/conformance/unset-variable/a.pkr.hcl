variable "set" {
  default = "x"
}

variable "unset" {
  type = string
}
