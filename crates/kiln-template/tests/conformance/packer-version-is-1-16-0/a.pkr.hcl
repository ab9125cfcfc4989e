packer {
  required_version = "~> 1.16.0"
}

locals {
  version = packer.version
}
