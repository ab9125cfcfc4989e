#!/bin/sh
# Runs as root in the guest: install what the file provisioner uploaded.
set -eu
install -D -m 0644 "$ISSUE_FILE" /etc/issue.d/cache-bench.issue
rm -f "$ISSUE_FILE"
printf 'build=%s builder=%s\n' "$PACKER_BUILD_NAME" "$PACKER_BUILDER_TYPE" >/opt/cache-bench/build-info
