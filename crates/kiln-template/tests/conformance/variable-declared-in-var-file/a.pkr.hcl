variable "x" {
  default = "a"
}
