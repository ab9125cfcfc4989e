locals {
    script = <<-EOS
      #!/bin/sh
      echo ${var.x}
    EOS
  other=   "x"
  tpl = "%{ for s in var.list }${s},%{ endfor }"
  strip = "a ${~ var.x ~} b"
}
build {
  provisioner "shell" {
  inline = [<<EOF
echo hi
EOF
  ]
  }
}
