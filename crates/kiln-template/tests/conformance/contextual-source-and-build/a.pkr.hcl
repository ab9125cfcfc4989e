source "null" "base" {
  communicator = "none"
}

build {
  name = "img"
  source "null.base" {
    name = "second"
  }
  provisioner "shell-local" {
    inline = ["echo ${source.type} ${source.name} ${build.name}"]
  }
}
