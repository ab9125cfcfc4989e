variable "y" {
  default = "b"
}
