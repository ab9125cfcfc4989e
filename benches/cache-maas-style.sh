#!/bin/bash
# The step cache on a packer-maas-style template (benches/templates/
# cache-maas-style), against Packer 1.6.6, in one run (issue 16):
#   1. first build with the cache on (a cold cache): kiln's wall time against
#      Packer's, and each tool's own overhead beyond the guest's boot,
#      provisioning and shutdown (measured from outside by guest_probe.py);
#      kiln's checkpoints count as kiln's overhead;
#   2. per checkpoint: the guest's pause (from kiln's "Cached … (guest paused
#      X s …)" line) and the state and disk bytes written (from the cache
#      entries' meta.json);
#   3. a rebuild after one byte of scripts/last.sh changed, in the same
#      directory, without re-running the `null` build (`-only=qemu.maas`):
#      wall time against the full build, and whether the cache hit;
#   4. a rebuild after only the post-processor changed: whether a VM started.
# Each tool builds in its own copy of the template, from that directory, the
# `null` build first (seed + UEFI variables), then `-only=qemu.maas`; the
# wall times compared are the image build's. The VM builds hold the lock
# the test suite uses (`${TMPDIR:-/tmp}/kiln-vm.lock`), taken before the
# clocks start. Ends with one JSON line {"bench": "cache-maas-style", …}.
#
#   KILN=PATH   the kiln binary (default: a release build of this checkout)
#   KEEP=1      keep the work directory (logs, outputs, the cache)
#   benches/cache_report.py WORKDIR   re-reads a kept run
#
# "Before" (kiln main at 991fe65, two runs, TCG, 2 busy cores): first build
# kiln 93.6 / 90.0 s vs Packer 86.1 / 95.6 s (1.09x / 0.94x); kiln overhead
# with its checkpoints 7.8 / 9.6 s (Packer 5.5 / 6.3 s); five checkpoints
# each pausing the guest 0.5-0.9 s and writing 70-80 MiB of zstd state;
# rebuilds after last.sh and after the post-processor both MISS ("nothing
# cached for this build yet": the first build rewrote OVMF_VARS.fd) and
# boot a VM (60-81 s).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export CHECKPOINT_DISABLE=1
lock="${TMPDIR:-/tmp}/kiln-vm.lock"

die() { echo "error: $*" >&2; exit 1; }
command -v cloud-localds >/dev/null || die "\`cloud-localds\` is missing (apt-get install cloud-image-utils)"
command -v packer >/dev/null || die "\`packer\` is missing (apt-get install packer): it is this bench's reference"
# OVMF from Debian's package: the 4M files, else the 2M ones of older releases.
ovmf_code='' ovmf_vars=''
for sfx in _4M ''; do
  if [ -f "/usr/share/OVMF/OVMF_CODE$sfx.fd" ] && [ -f "/usr/share/OVMF/OVMF_VARS$sfx.fd" ]; then
    ovmf_code=/usr/share/OVMF/OVMF_CODE$sfx.fd ovmf_vars=/usr/share/OVMF/OVMF_VARS$sfx.fd
    break
  fi
done
[ -n "$ovmf_code" ] || die "no OVMF in /usr/share/OVMF (OVMF_CODE_4M.fd + OVMF_VARS_4M.fd): apt-get install ovmf"

if [ -z "${KILN:-}" ]; then
  cargo build --release --locked -p kiln >&2
  KILN=$repo/target/release/kiln
fi
kiln=$(realpath "$KILN")
base_dir=$(fixtures/base-image/build.sh | tail -n 1)
base="$base_dir/base.qcow2"
sum="sha256:$(sha256sum "$base" | cut -d' ' -f1)"
vars=(-var "base_image=$base" -var "base_checksum=$sum" -var "ovmf_code=$ovmf_code" -var "ovmf_vars=$ovmf_vars")

work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench-cache-XXXX")
for tool in packer kiln; do
  cp -r "$repo/benches/templates/cache-maas-style" "$work/$tool"
done
export KILN_CACHE_DIR="$work/kiln-cache"
"$kiln" --version >"$work/kiln-version" 2>&1 || true
packer version >"$work/packer-version" 2>&1 || true

stamp() { python3 -u -c 'import sys,time
for l in sys.stdin: sys.stdout.write("%.3f %s" % (time.time(), l)); sys.stdout.flush()'; }

# The VM builds take the test suite's lock once, for all four of them: they
# run back to back (no other VM loads the machine between them), and the
# run does not queue behind other engineers' VM tests four times. The
# clock of each build starts after the lock is held.
vm_lock() {
  exec 8>"$lock"
  if ! flock -n 8; then
    echo "waiting for $lock (another VM is running; since $(date -u +%H:%M:%S) UTC)" >&2
    flock 8
  fi
}
vm_unlock() {
  flock -u 8
  exec 8>&-
}

# phase NAME TOOL PROBE CMD...: run CMD in $work/TOOL, its output time-stamped into $work/NAME.ts and its wall seconds in
# $work/NAME.wall (or "failed STATUS"). PROBE: `probe` watches the guest
# with guest_probe.py, `watch` only records whether a QEMU started.
phase() {
  local name=$1 tool=$2 probe=$3 pid='' status=0 t0 t1
  shift 3
  echo "--- $name" >&2
  (
    cd "$work/$tool"
    if [ "$probe" = probe ]; then
      python3 "$repo/benches/guest_probe.py" "$work/$name.probe.json" 8>&- &
      pid=$!
    fi
    t0=$(date +%s.%N)
    if [ "$probe" = watch ]; then
      python3 "$repo/benches/vm_watch.py" "$work/$name.vms.json" "$@" 8>&- 2>&1 | stamp >"$work/$name.ts" || status=$?
    else
      "$@" 8>&- 2>&1 | stamp >"$work/$name.ts" || status=$?
    fi
    t1=$(date +%s.%N)
    if [ "$status" -eq 0 ]; then echo "$t0 $t1" >"$work/$name.wall"; else echo "failed $status" >"$work/$name.wall"; fi
    if [ -n "$pid" ]; then
      # The probe ends when QEMU does; a build that never started one leaves it waiting.
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  )
  if grep -q '^failed' "$work/$name.wall"; then
    echo "$name: $(cat "$work/$name.wall"); last lines of $work/$name.ts:" >&2
    tail -n 15 "$work/$name.ts" >&2
  fi
}

# Packer 1.6.6: the null build, then the image build.
phase packer-deps packer none packer build -force -only=null.seed "${vars[@]}" .
vm_lock
phase packer-first packer probe packer build -force -only=qemu.maas "${vars[@]}" .
# kiln, the same two commands with a cold step cache; `kiln doctor` first
# (untimed) so that the host facts it caches beside the steps are warm, as
# on any machine that has run kiln before.
"$kiln" doctor >"$work/kiln-doctor.log" 2>&1 || true
phase kiln-deps kiln none "$kiln" build -force -only=null.seed "${vars[@]}" .
phase kiln-first kiln probe python3 "$repo/benches/peak_rss.py" "$work/kiln-first.rss_kb" \
  "$kiln" build -force -only=qemu.maas "${vars[@]}" .
# The entries the first build published (meta.json: step, state and disk bytes).
mkdir -p "$work/first-entries"
for m in "$KILN_CACHE_DIR"/steps/entries/*/meta.json; do
  [ -f "$m" ] && cp "$m" "$work/first-entries/$(basename "$(dirname "$m")").json"
done
# One byte of the last script, then the image build alone, as users iterate.
sed -i 's/marker 0/marker 1/' "$work/kiln/scripts/last.sh"
grep -q 'marker 1' "$work/kiln/scripts/last.sh" || die "could not change scripts/last.sh"
phase kiln-last kiln probe "$kiln" build -force -only=qemu.maas "${vars[@]}" .
# Only the post-processor changes.
sed -i 's/post-processor marker 0/post-processor marker 1/' "$work/kiln/cache-maas-style.pkr.hcl"
grep -q 'post-processor marker 1' "$work/kiln/cache-maas-style.pkr.hcl" || die "could not change the post-processor"
phase kiln-pp kiln watch "$kiln" build -force -only=qemu.maas "${vars[@]}" .
vm_unlock

python3 "$repo/benches/cache_report.py" "$work"
if [ -z "${KEEP:-}" ]; then rm -rf "$work"; else echo "kept $work" >&2; fi
