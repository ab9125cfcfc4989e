# A provisioner that reboots the guest (`expect_disconnect`), then one
# whose script fails: its exit status stops the build, its output shown.

variable "base_image" {
  type = string
}

source "qemu" "reboot" {
  iso_url          = var.base_image
  iso_checksum     = "none"
  disk_image       = true
  use_backing_file = true
  efi_boot         = true
  machine_type     = "q35"
  memory           = 1024
  cpus             = 2
  headless         = true

  cd_label = "cidata"
  cd_content = {
    "user-data" = "#cloud-config\nssh_authorized_keys:\n  - {{ .SSHPublicKey }}\n"
    "meta-data" = "instance-id: kiln-vm-test-reboot\nlocal-hostname: kiln-reboot\n"
  }

  ssh_username     = "debian"
  ssh_timeout      = "15m"
  shutdown_command = "sudo shutdown -P now"
}

build {
  sources = ["source.qemu.reboot"]

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
