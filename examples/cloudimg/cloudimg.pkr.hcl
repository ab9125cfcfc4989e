# The build: provision the guest of `source.pkr.hcl`, then write the MAAS
# artifact. (The source has a file of its own so that kiln's VM tests can
# resume this very guest under builds of their own: see `kiln-test`'s
# `shared_guest`.)

build {
  sources = ["source.qemu.cloudimg"]

  provisioner "shell" {
    inline = [
      "cloud-init status --wait >/dev/null || true",
      "echo \"$GREETING\" | sudo tee /etc/kiln-greeting",
    ]
    environment_vars = ["GREETING=${var.greeting}"]
  }

  provisioner "file" {
    source      = "${path.root}/files/motd"
    destination = "/tmp/motd"
  }

  provisioner "shell" {
    script           = "${path.root}/scripts/setup.sh"
    execute_command  = "{{ .Vars }} sudo -E sh -eu '{{ .Path }}'"
    environment_vars = ["MOTD_SOURCE=/tmp/motd"]
  }

  # The MAAS artifact: the root filesystem as curtin extracts it, scrubbed
  # while streaming (machine-id, host keys, cloud-init state, histories),
  # then scanned for leaked secrets before the build may succeed.
  post-processor "maas-tgz" {
    output = "output-cloudimg/custom-cloudimg.tar.gz"
  }

  post-processor "manifest" {
    output     = "output-cloudimg/manifest.json"
    strip_path = true
  }

  post-processor "checksum" {
    checksum_types = ["sha256"]
    output         = "output-cloudimg/{{.BuildName}}.{{.ChecksumType}}"
  }
}
