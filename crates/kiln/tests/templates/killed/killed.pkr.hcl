# QEMU killed from outside while a provisioner runs: the build must fail at
# once with QEMU's exit status, and clean up.
#
# Its guest is the shared one (`kiln_test::shared_guest`): the test adds
# the example's `variables.pkr.hcl` and `source.pkr.hcl`.

build {
  name    = "killed"
  sources = ["source.qemu.cloudimg"]

  provisioner "shell" {
    inline = [
      "echo 'kiln-test: provisioning, kill QEMU now'",
      "sleep 600",
    ]
  }
}
