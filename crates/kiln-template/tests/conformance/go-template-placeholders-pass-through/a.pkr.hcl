variable "port" {
  default = "8080"
}
locals {
  url = "http://{{ .HTTPIP }}:{{ .HTTPPort }}/${var.port}/user-data"
}
source "null" "n" {
  communicator = "none"
}

build {
  sources = ["source.null.n"]
}
