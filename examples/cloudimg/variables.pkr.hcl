variable "base_image" {
  type        = string
  description = "Absolute path of the base cloud image (qcow2) to customise."
}

variable "base_checksum" {
  type        = string
  default     = "none"
  description = "Its checksum, e.g. `sha256:HEX`, or `none`."
}

variable "ssh_username" {
  type    = string
  default = "debian"
}

variable "memory" {
  type        = number
  default     = 1024
  description = "Guest memory in MiB."
}

variable "cpus" {
  type    = number
  default = 2
}

variable "greeting" {
  type    = string
  default = "built with kiln"
}
