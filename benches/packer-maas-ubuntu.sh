#!/usr/bin/env bash
# packer-maas's own Ubuntu cloud-image pipeline, run unmodified through its
# Makefile with PACKER=kiln, on the Debian base-image fixture.
#
# Usage: benches/packer-maas-ubuntu.sh PACKER_MAAS_CHECKOUT [WORKDIR]
#
# The checkout is canonical/packer-maas as users clone it (not part of this
# repository). Only the substitutions an offline, KVM-less host forces are
# made, on a copy:
#   - the cloud image's URL and checksum → the fixture (file:// + sha256);
#   - KILN_ACCEL=tcg (the template hard-codes `accel=kvm` and `-cpu host`);
#   - ROOT_PARTITION=1 → 2 in the post-processor (the fixture's root is p2);
#   - the Ubuntu-only lines of its scripts: `linux-virtual` in
#     setup-boot.sh, and in cleanup.sh the netplan file and `/root/.cache`
#     it removes (Ubuntu's cloud image has both; the fixture has neither);
#   - `make -o check-deps`: its dependency check takes Debian 12 for Ubuntu
#     20.04 and asks for a package `nbdfuse` that Debian ships inside
#     `libnbd-bin` (installed by scripts/deps.sh); Packer meets the same.
# Prints the phase times of the build and the tarball's size and entries.
set -euo pipefail
cd "$(dirname "$0")/.."

src=${1:?usage: $0 PACKER_MAAS_CHECKOUT [WORKDIR]}
src=$(cd "$src" && pwd)
work=${2:-$(mktemp -d -t kiln-packer-maas-XXXX)}
mkdir -p "$work"
work=$(cd "$work" && pwd)

# KILN: a kiln binary to use (default: a release build of this checkout).
if [ -z "${KILN:-}" ]; then
  cargo build --release --locked -p kiln >&2
  KILN=$PWD/target/release/kiln
fi
kiln=$KILN
fixture=$(fixtures/base-image/build.sh | tail -n 1)

rm -rf "$work/ubuntu" "$work/scripts"
cp -a "$src/ubuntu" "$src/scripts" "$work/"
cd "$work/ubuntu"
sum=$(sha256sum "$fixture/base.qcow2" | cut -d' ' -f1)
sed -i \
  -e "s#^\( *iso_checksum *= *\)\"file:https://cloud-images.ubuntu.com/.*\"#\1\"sha256:$sum\"#" \
  -e "s#^\( *iso_url *= *\)\"https://cloud-images.ubuntu.com/.*\"#\1\"file://$fixture/base.qcow2\"#" \
  -e 's/"ROOT_PARTITION=1"/"ROOT_PARTITION=2"/' \
  ubuntu-cloudimg.pkr.hcl
sed -i 's/ linux-virtual / /' scripts/cloudimg/setup-boot.sh
sed -i -e 's#^rm /etc/netplan/50-cloud-init.yaml#rm -f /etc/netplan/50-cloud-init.yaml#' \
  -e 's#^rm -r /root/.cache#rm -rf /root/.cache#' scripts/cloudimg/cleanup.sh
echo "==> substitutions made:" >&2
(cd "$src/ubuntu" && diff -ru . "$work/ubuntu" | grep '^[-+][^-+]' >&2) || true

start=$(date +%s.%N)
KILN_ACCEL=tcg CHECKPOINT_DISABLE=1 make -o check-deps custom-cloudimg.tar.gz PACKER="$kiln" 2>&1 |
  tee "$work/make.log" | while IFS= read -r line; do
    printf '%7.1f %s\n' "$(echo "$(date +%s.%N) - $start" | bc)" "$line"
  done
status=${PIPESTATUS[0]}
end=$(date +%s.%N)
echo "==> make exited $status after $(echo "$end - $start" | bc) s" >&2
[ "$status" -eq 0 ] || exit "$status"
ls -l custom-cloudimg.tar.gz
echo "entries: $(tar -tzf custom-cloudimg.tar.gz | wc -l)"
