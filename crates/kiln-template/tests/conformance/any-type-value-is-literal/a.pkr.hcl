variable "a" {
  type = any
}
source "null" "n" {
  communicator = "none"
}

build {
  sources = ["source.null.n"]
}
