# The installer path: no seed on a disk. OVMF boots an ESP holding only a
# plain kernel and initramfs (no boot loader), so it falls through to the
# UEFI shell; the boot command, typed over QMP, starts the kernel with a
# NoCloud HTTP seed on kiln's own HTTP server. The root file system is the
# base image's (a copy-on-write overlay as the build's disk).

variable "base_image" {
  type = string
}

# A FAT image with `vmlinuz` and `initrd.img` at its root.
variable "esp_image" {
  type = string
}

variable "root_label" {
  type = string
}

source "qemu" "installer" {
  iso_url          = var.base_image
  iso_checksum     = "none"
  disk_image       = true
  use_backing_file = true
  efi_boot         = true
  machine_type     = "q35"
  memory           = 1024
  cpus             = 2
  headless         = true

  # The ESP first in the boot order; `-device` replaces Packer's default
  # devices, so the NIC is added back as Packer does.
  qemuargs = [
    ["-blockdev", "driver=raw,node-name=esp,read-only=on,file.driver=file,file.filename=${var.esp_image}"],
    ["-device", "virtio-blk-pci,drive=esp,bootindex=0"],
  ]

  http_content = {
    "/user-data" = <<-EOT
      #cloud-config
      ssh_authorized_keys:
        - {{ .SSHPublicKey }}
      bootcmd:
        - [sh, -c, "echo 'served by {{ .HTTPIP }}:{{ .HTTPPort }}' > /run/kiln-http-seed"]
    EOT
    "/meta-data" = "instance-id: kiln-vm-test-installer\nlocal-hostname: kiln-installer\n"
  }

  # The shell's startup.nsh countdown ends about 12 s after power-on under
  # TCG; keys typed during it are lost, <esc> skips it.
  boot_wait = "15s"
  boot_command = [
    "<esc><wait5s>fs0:<enter><wait2s>",
    "vmlinuz initrd=\\initrd.img root=LABEL=${var.root_label} ro console=ttyS0 ds=nocloud-net;s=http://{{ .HTTPIP }}:{{ .HTTPPort }}/<enter>",
  ]

  ssh_username     = "debian"
  ssh_timeout      = "15m"
  shutdown_command = "sudo shutdown -P now"
}

build {
  sources = ["source.qemu.installer"]

  provisioner "shell" {
    inline = [
      "echo \"cmdline: $(cat /proc/cmdline)\"",
      "echo \"seed: $(cat /run/kiln-http-seed)\"",
    ]
  }

  # Interrupted by the test (Ctrl-C) while it sleeps.
  provisioner "shell" {
    inline = [
      "echo 'kiln-test: provisioning, waiting for Ctrl-C'",
      "sleep 600",
    ]
  }

  post-processor "manifest" {
    output = "manifest.json"
  }
}
