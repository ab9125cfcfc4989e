x = "from -var-file hcl"
