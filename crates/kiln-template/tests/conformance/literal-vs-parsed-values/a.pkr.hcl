variable "s" {
  type = string
}
variable "n" {
  type = number
}
variable "u" {}
variable "b" {
  type = bool
}
variable "l" {
  type = list(string)
}
variable "m" {
  type = map(number)
}
variable "d" {
  default = ["x"]
}
source "null" "n" {
  communicator = "none"
}

build {
  sources = ["source.null.n"]
}
