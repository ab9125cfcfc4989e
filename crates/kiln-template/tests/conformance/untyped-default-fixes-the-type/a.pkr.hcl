variable "d" {
  default = ["x"]
}
