locals {
  items    = ["x", "y"]
  rendered = templatefile("${path.root}/user-data.tpl", { name = "kiln", items = local.items })
}

source "null" "n" {
  communicator = "none"
}

build {
  sources = ["source.null.n"]
}
