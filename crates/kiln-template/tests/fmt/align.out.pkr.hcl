source "qemu" "x" {
  a           = 1
  longer_name = "x" // c1
  # a comment line breaks the run
  b   = 2
  ccc = 3

  after_blank = true # c2
  z           = { k = "v", kk = "vv" }
  nested {
    inner = 1
    inner_two = [
      "a",
      "b",
    ]
  }
  empty {}
  oneline { a = 1 }
}
