x = "from hcl"
