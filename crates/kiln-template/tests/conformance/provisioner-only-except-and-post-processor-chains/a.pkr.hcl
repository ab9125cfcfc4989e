source "null" "a" {
  communicator = "none"
}
source "null" "b" {
  communicator = "none"
}

build {
  sources = ["source.null.a", "source.null.b"]

  provisioner "shell-local" {
    only   = ["null.a"]
    inline = ["echo only a"]
  }
  provisioner "shell-local" {
    except       = ["null.a"]
    inline       = ["echo not a"]
    pause_before = "1m30s"
    max_retries  = 3
    timeout      = "5m"
  }

  post-processor "manifest" {
    name = "first"
  }
  post-processors {
    post-processor "shell-local" {
      name   = "compress"
      inline = ["echo compress"]
    }
    post-processor "manifest" {
      name                = "after"
      keep_input_artifact = true
    }
  }
}
