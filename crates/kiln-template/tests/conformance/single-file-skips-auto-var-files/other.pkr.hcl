variable "y" {}
