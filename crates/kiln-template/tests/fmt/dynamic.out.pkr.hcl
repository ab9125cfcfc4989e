source "amazon-ebs" "x" {
  dynamic "tag" {
    for_each = local.tags
    content {
      key   = tag.key
      value = tag.value
    }
  }
  vals  = [for k, v in var.m : "${k}=${v}" if v != null]
  math  = (1 + 2) * 3 / 4 % 5
  neg   = -var.x
  cmp   = var.a >= 1 && var.b <= 2 || ! var.c
  idx   = var.list[0][1].attr
  splat = var.list.*.id
}
