x = "file b"
