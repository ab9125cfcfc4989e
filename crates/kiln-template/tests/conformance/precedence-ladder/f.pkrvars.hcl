d = "var-file"
e = "var-file"
