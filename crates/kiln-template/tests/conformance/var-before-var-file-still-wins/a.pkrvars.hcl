x = "file a"
