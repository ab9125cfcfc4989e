variable "base_image" {
  type        = string
  description = "The base cloud image (qcow2, UEFI: GPT with an ESP) to customise."
}

variable "base_checksum" {
  type        = string
  default     = "none"
  description = "iso_checksum of the base image, e.g. sha256:HEX."
}

variable "ssh_password" {
  type        = string
  default     = "cache-bench-pw"
  sensitive   = true
  description = "The password user-data gives `debian` (its hash is in user-data)."
}

variable "accelerator" {
  type        = string
  default     = "tcg"
  description = "QEMU accelerator; TCG because KVM does not run guests on the bench machines."
}

variable "memory" {
  type    = number
  default = 1024
}

variable "ovmf_code" {
  type        = string
  default     = "/usr/share/OVMF/OVMF_CODE_4M.fd"
  description = "OVMF code (read-only pflash)."
}

variable "ovmf_vars" {
  type        = string
  default     = "/usr/share/OVMF/OVMF_VARS_4M.fd"
  description = "OVMF variables template, copied into the template directory by the null build."
}

variable "timeout" {
  type    = string
  default = "20m"
}
