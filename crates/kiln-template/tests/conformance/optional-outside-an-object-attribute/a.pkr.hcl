variable "names" {
  type    = list(optional(string))
  default = []
}

variable "bad_default" {
  type = object({
    size = optional(number, "big")
  })
  default = {}
}
