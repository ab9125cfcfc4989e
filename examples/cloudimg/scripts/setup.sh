#!/bin/sh
# Runs as root in the guest.
set -eu
install -m 0644 "$MOTD_SOURCE" /etc/motd
rm -f "$MOTD_SOURCE"
mkdir -p /opt/kiln
printf 'build=%s builder=%s\n' "$PACKER_BUILD_NAME" "$PACKER_BUILDER_TYPE" > /opt/kiln/build-info
# What the build needed and the image must not keep.
cloud-init clean --logs
rm -f /etc/ssh/ssh_host_*
truncate -s 0 /etc/machine-id
sync
