locals {
  script = "${path.root}/scripts/setup.sh"
}
source "null" "n" {
  communicator = "none"
}

build {
  sources = ["source.null.n"]
}
