locals {
  ok  = "a\nb"
  bad = "first line
second line"
}
