variable "x" {
  default = "d"
}
source "null" "n" {
  communicator = "none"
}

build {
  sources = ["source.null.n"]
}
