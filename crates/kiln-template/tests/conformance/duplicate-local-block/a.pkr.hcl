locals {
  l = "a"
}

local "l" {
  expression = "b"
}
