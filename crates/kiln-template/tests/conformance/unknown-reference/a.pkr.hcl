variable "image_name" {
  default = "x"
}

locals {
  name = var.image_nam
}
