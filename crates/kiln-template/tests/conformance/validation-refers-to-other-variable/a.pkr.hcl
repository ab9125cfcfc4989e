variable "other" {
  default = "x"
}
variable "size" {
  default = 10
  validation {
    condition     = var.other != ""
    error_message = "Nope."
  }
}
