source "null" "ubuntu" {
  communicator = "none"
}

build {
  sources = ["source.null.ubunt"]
}
