source "null" "a" {
  communicator = "none"
}
source "null" "b" {
  communicator = "none"
}

build {
  name    = "web"
  sources = ["source.null.a", "null.b"]
}

build {
  source "null.a" {
    name = "renamed"
  }
}
