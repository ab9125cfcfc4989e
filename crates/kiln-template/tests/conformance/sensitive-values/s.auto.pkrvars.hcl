password = "s3cr3t"
