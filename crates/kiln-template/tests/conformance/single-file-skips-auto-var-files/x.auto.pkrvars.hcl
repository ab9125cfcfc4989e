x = "auto"
