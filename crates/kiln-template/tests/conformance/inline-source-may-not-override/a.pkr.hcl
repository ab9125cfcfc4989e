source "null" "n" {
  communicator = "none"
}

build {
  source "null.n" {
    communicator = "ssh"
  }
}
