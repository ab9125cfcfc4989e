variabel "x" {
  default = "a"
}
