variable "a" {
  default = "default"
}
variable "b" {
  default = "default"
}
variable "c" {
  default = "default"
}
variable "d" {
  default = "default"
}
variable "e" {
  default = "default"
}
source "null" "n" {
  communicator = "none"
}

build {
  sources = ["source.null.n"]
}
