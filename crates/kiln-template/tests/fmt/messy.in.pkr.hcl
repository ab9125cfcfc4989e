# top comment
variable "a" {
type=string
    default = "x"   # trailing
  description="the a"
}

/* block
   comment */
locals {
a=1
  bb = {
  x = 1
  yy = [1,2 ,3]
  }
  c = var.a=="x"?1:-2
  d = [ for x in [1,2]: x*2 if x>1 ]
  e = { for k,v in {a=1} : k=>v }
  f = "${var.a}-${ upper(var.a) }"
  g = <<EOT
  hello ${var.a}
   world
EOT
  h = -1
  i = 1 - 2
  j = !true
  k = local.bb.yy[0]
  l = local.d[*]
  m = func(1, 2, [3]...)
}

source "null" "x"{
communicator="none"
}
build{
  sources=["source.null.x"]
  provisioner "shell-local" {
      inline = [
        "echo hi",   # one
        "echo there" // two
      ]
  }
}
