variable "x" {
  default = "d"
}
variable "l" {
  type = list(number)
  default = []
}
source "null" "n" {
  communicator = "none"
}

build {
  sources = ["source.null.n"]
}
