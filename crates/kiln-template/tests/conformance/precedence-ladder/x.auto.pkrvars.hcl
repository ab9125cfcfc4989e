c = "auto"
d = "auto"
e = "auto"
