#!/bin/sh
# Runs as root in the guest.
set -eu
install -m 0644 "$MOTD_SOURCE" /etc/motd
rm -f "$MOTD_SOURCE"
printf 'build_name=%s builder=%s\n' "$PACKER_BUILD_NAME" "$PACKER_BUILDER_TYPE" > /opt/kiln/build-info
