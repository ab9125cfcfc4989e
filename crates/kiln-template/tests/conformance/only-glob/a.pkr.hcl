source "null" "a" {
  communicator = "none"
}

build {
  name    = "web"
  sources = ["source.null.a"]
}

build {
  name    = "db"
  sources = ["source.null.a"]
}
