# A build whose image would leak: a provisioner plants a private key,
# copies the login's authorized_keys (the build's key) to authorized_keys2
# (which sshd also reads, and `ssh_clear_authorized_keys` does not touch),
# with the scrub of build keys skipped, and a sensitive value lands in a
# file. The maas-tgz leak gate must fail naming all three.
#
# Its guest is the shared one (`kiln_test::shared_guest`): the test adds
# the example's `variables.pkr.hcl` and `source.pkr.hcl`.

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
      "cp ~/.ssh/authorized_keys ~/.ssh/authorized_keys2",
      "echo 'token=${var.api_token}' | sudo tee /etc/app.conf >/dev/null",
    ]
  }

  post-processor "maas-tgz" {
    output     = "output-leak/leak.tar.gz"
    scrub_skip = ["build-key"]
  }
}
