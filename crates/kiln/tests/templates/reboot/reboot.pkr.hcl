# A provisioner that reboots the guest (`expect_disconnect`), then one
# whose script fails: its exit status stops the build, its output shown.
#
# Its guest is the shared one (`kiln_test::shared_guest`): the test adds
# the example's `variables.pkr.hcl` and `source.pkr.hcl`.

build {
  name    = "reboot"
  sources = ["source.qemu.cloudimg"]

  provisioner "shell" {
    inline = [
      "cat /proc/sys/kernel/random/boot_id > /var/tmp/kiln-boot-id",
      "echo \"kiln-test: rebooting from boot $(cat /var/tmp/kiln-boot-id)\"",
      "sudo systemctl reboot",
      "sleep 120",
    ]
    expect_disconnect = true
  }

  provisioner "shell" {
    pause_before = "10s"
    inline = [
      "before=$(cat /var/tmp/kiln-boot-id)",
      "now=$(cat /proc/sys/kernel/random/boot_id)",
      "echo \"kiln-test: boot $before -> $now\"",
      "[ \"$before\" != \"$now\" ] && echo 'kiln-test: rebooted'",
      "echo 'kiln-test: about to fail' >&2",
      "exit 3",
    ]
  }

  provisioner "shell" {
    inline = ["echo 'kiln-test: must not run'"]
  }
}
