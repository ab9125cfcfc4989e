variable "size" {
  type    = number
  default = 10
  validation {
    condition     = var.size > 5
    error_message = "The size must be greater than 5."
  }
}
