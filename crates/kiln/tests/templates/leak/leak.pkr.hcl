# A build whose image would leak: a provisioner plants a private key, the
# build's key stays authorised (its scrub is skipped), and a sensitive
# value lands in a file. The maas-tgz leak gate must fail naming all three.
#
# Its guest is the shared one (`kiln_test::shared_guest`): the test adds
# the example's `variables.pkr.hcl` and `source.pkr.hcl` (`base_image`,
# `source.qemu.cloudimg`) and the build resumes it.

variable "api_token" {
  type      = string
  default   = "kiln-leak-token-5d1e9a"
  sensitive = true
}

build {
  name    = "leak"
  sources = ["source.qemu.cloudimg"]

  provisioner "shell" {
    inline = [
      "ssh-keygen -q -t ed25519 -N '' -C leaked -f ~/.ssh/id_ed25519",
      "echo 'token=${var.api_token}' | sudo tee /etc/app.conf >/dev/null",
    ]
  }

  post-processor "maas-tgz" {
    output     = "output-cloudimg/leak.tar.gz"
    scrub_skip = ["build-key"]
  }
}
