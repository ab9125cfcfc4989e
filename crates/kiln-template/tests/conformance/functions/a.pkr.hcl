variable "arch" {
  type    = string
  default = "amd64"
  validation {
    condition     = contains(["amd64", "arm64"], var.arch)
    error_message = "The arch must be amd64 or arm64."
  }
}

locals {
  upper     = upper(var.arch)
  formatted = format("%s-%03d", var.arch, 7)
  looked_up = lookup({ amd64 = "x86_64" }, var.arch, "other")
  joined    = join(",", concat(["a"], ["b", "c"]))
  counted   = length(local.list)
  list      = ["x", "y"]
  fallback  = try(local.list[5], "none")
  can_index = can(local.list[5])
  json      = jsonencode({ a = 1, b = [true] })
  converted = convert(["1", "2"], list(number))[1]
  file      = trimspace(file("${path.root}/data.txt"))
}

source "null" "n" {
  communicator = "none"
}

build {
  sources = ["source.null.n"]
}
