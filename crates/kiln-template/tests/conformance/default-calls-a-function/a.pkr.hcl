variable "x" {
  default = upper("a")
}
