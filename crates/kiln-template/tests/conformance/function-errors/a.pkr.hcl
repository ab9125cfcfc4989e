locals {
  bad  = upper(["not", "a", "string"])
  typo = uppr("x")
}
