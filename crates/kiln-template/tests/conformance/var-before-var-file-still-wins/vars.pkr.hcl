variable "x" {
  default = "default"
}
source "null" "n" {
  communicator = "none"
}

build {
  sources = ["source.null.n"]
}
