
n = "many"
