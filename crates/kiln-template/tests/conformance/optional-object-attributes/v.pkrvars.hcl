disks = [
  { name = "a" },
  { name = "b", opts = { fast = false } },
  { name = "c", opts = null },
]
