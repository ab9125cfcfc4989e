variable "disk" {
  type = object({
    name   = string
    size   = optional(number, 5)
    labels = optional(list(string))
  })
  default = { name = "root" }
}

variable "disks" {
  type = list(object({
    name = string
    opts = optional(object({
      fast = optional(bool, true)
    }), {})
  }))
}

variable "from_cli" {
  type = object({
    a = string
    b = optional(string, "default b")
  })
}

locals {
  size  = var.disk.size
  fast  = [for d in var.disks : d.opts.fast]
  typed = convert({ a = 1 }, object({ a = string, b = optional(number) }))
}
