#!/bin/bash
# Install what kiln, its tests and its example need on Debian/Ubuntu.
# Idempotent: does nothing when everything is already there.
set -euo pipefail

PACKAGES=(
  # running builds
  qemu-system-x86 qemu-utils ovmf
  # tests: reassembling the accelerator smoke guest, checking seed ISOs
  nasm genisoimage
  # building the base image fixture from Debian packages
  debootstrap gdisk mtools dosfstools systemd-boot-efi binutils e2fsprogs zstd
  # tests: a real sshd on loopback, xattr/capability tools, tar
  openssh-server openssh-client attr acl libcap2-bin tar xz-utils openssl
  # reference peers for benchmarks (never used by kiln itself)
  packer pigz libnbd-bin nbdkit fuse2fs fuse3 bc time
  # packer-maas's own Makefiles (benches/packer-maas-ubuntu.sh)
  cloud-image-utils parted lsb-release make
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing: ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "==> installing cargo-nextest" >&2
  cargo install --locked cargo-nextest >&2
fi
