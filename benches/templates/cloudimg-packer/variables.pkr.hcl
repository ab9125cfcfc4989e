variable "base_image" {
  type        = string
  description = "Path of the base cloud image (qcow2) to customise."
}

variable "base_checksum" {
  type        = string
  default     = "none"
  description = "iso_checksum of the base image, e.g. sha256:HEX."
}

variable "ssh_username" {
  type    = string
  default = "debian"
}

variable "ssh_password" {
  type      = string
  default   = "kiln-bench-pass"
  sensitive = true
}

variable "memory" {
  type    = number
  default = 1024
}

variable "accelerator" {
  type    = string
  default = "tcg"
}

variable "ovmf_code" {
  type    = string
  default = "/usr/share/OVMF/OVMF_CODE_4M.fd"
}

variable "ovmf_vars" {
  type    = string
  default = "/usr/share/OVMF/OVMF_VARS_4M.fd"
}

variable "timeout" {
  type    = string
  default = "10m"
}
