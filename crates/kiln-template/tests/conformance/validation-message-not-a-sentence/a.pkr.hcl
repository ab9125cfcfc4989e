variable "size" {
  default = 10
  validation {
    condition     = var.size > 5
    error_message = "too small"
  }
}
