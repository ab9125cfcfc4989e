#!/usr/bin/env bash
# Benchmark kiln's MAAS root tarball writer against the packer-maas pipeline
# (qemu-nbd + nbdfuse + fuse2fs + tar + pigz --best, and + gzip), on the same
# image, in the same run. Prints time, tarball size and peak RSS of each, the
# ratios, and one JSON line at the end.
#
# Usage: benches/maas-tgz.sh [IMAGE]
#   IMAGE              qcow2/raw disk (default: the fixture base image, from
#                      fixtures/base-image/build.sh)
# Environment:
#   ROOT_PARTITION     root partition number for the reference (default 2);
#                      kiln finds the root itself unless KILN_ROOT is set
#   KILN_LEVEL         kiln's gzip level (default: the library default)
#   KILN_SHARED_DIR    the shared folder holding bench/packer-maas-tgz.sh
#                      (default: ../shared relative to the repository root)
#   RUNS               runs of each pipeline; the median is reported (default 1)
#   SKIP_REFERENCE=1   run kiln only
#   BENCH_OUT          where outputs go (default: a temporary directory)
# Needs: libnbd-bin nbdkit fuse2fs fuse3 pigz qemu-utils bc time (the
# reference script falls back to loop mounts or debugfs without FUSE and says
# which method it used).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=${KILN_SHARED_DIR:-$REPO/../shared}
REF_SCRIPT=$SHARED/bench/packer-maas-tgz.sh
RUNS=${RUNS:-1}
ROOT_PARTITION=${ROOT_PARTITION:-2}

IMAGE=${1:-}
if [ -z "$IMAGE" ]; then
  if [ -x "$REPO/fixtures/base-image/build.sh" ]; then
    echo "# building/locating the fixture base image…" >&2
    dir=$("$REPO/fixtures/base-image/build.sh" | tail -n1)
    IMAGE=$dir/base.qcow2
  fi
fi
[ -n "$IMAGE" ] && [ -f "$IMAGE" ] || { echo "error: no image; pass one: benches/maas-tgz.sh IMAGE" >&2; exit 2; }
IMAGE=$(readlink -f "$IMAGE")

OUT=${BENCH_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench-tgz.XXXXXX")}
mkdir -p "$OUT"
echo "# image: $IMAGE ($(stat -c%s "$IMAGE") bytes)"
echo "# outputs: $OUT"

echo "# building kiln's writer (release)…" >&2
(cd "$REPO" && cargo build --release -q -p kiln-maas --example maas-tgz)
KILN_BIN=$REPO/target/release/examples/maas-tgz

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }

# run_timed NAME CMD… -> appends "seconds size rss" lines to $OUT/NAME.runs
run_timed() {
  local name=$1 output=$2; shift 2
  local log=$OUT/$name.time
  rm -f "$output"
  /usr/bin/time -v -o "$log" "$@" > "$OUT/$name.stdout" 2> "$OUT/$name.stderr" || {
    echo "error: $name failed; see $OUT/$name.stderr" >&2; tail -n 20 "$OUT/$name.stderr" >&2; return 1; }
  local secs rss
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/{n=split($2,t,":"); s=0; for(i=1;i<=n;i++) s=s*60+t[i]; print s}' "$log")
  rss=$(awk -F': ' '/Maximum resident set size/{print $2}' "$log")
  echo "$secs $(stat -c%s "$output") $rss" >> "$OUT/$name.runs"
}

declare -A METHOD
for ((r = 1; r <= RUNS; r++)); do
  if [ -z "${SKIP_REFERENCE:-}" ]; then
    [ -f "$REF_SCRIPT" ] || { echo "error: $REF_SCRIPT not found (set KILN_SHARED_DIR)" >&2; exit 2; }
    for comp in pigz gzip; do
      run_timed "packer-maas-$comp" "$OUT/packer-maas-$comp.tar.gz" \
        env IMAGE="$IMAGE" ROOT_PARTITION="$ROOT_PARTITION" OUTPUT="$OUT/packer-maas-$comp.tar.gz" \
            COMPRESSOR=$comp FORCE=1 BENCH_CACHE="$OUT/cache" bash "$REF_SCRIPT"
      METHOD[$comp]=$(grep -o 'method=[a-z]*' "$OUT/packer-maas-$comp.stdout" | tail -n1 | cut -d= -f2)
    done
  fi
  args=("$IMAGE" "$OUT/kiln.tar.gz" --no-scrub)
  [ -n "${KILN_LEVEL:-}" ] && args+=("$KILN_LEVEL")
  [ -n "${KILN_ROOT:-}" ] && args+=(--root "$KILN_ROOT")
  run_timed kiln "$OUT/kiln.tar.gz" "$KILN_BIN" "${args[@]}"
done

stat_of() { # NAME FIELD(1=secs 2=size 3=rss) -> median
  [ -f "$OUT/$1.runs" ] || { echo nan; return; }
  awk -v f="$2" '{print $f}' "$OUT/$1.runs" | median
}

k_t=$(stat_of kiln 1); k_s=$(stat_of kiln 2); k_m=$(stat_of kiln 3)
kiln_json=$(tail -n1 "$OUT/kiln.stdout")
entries=$(echo "$kiln_json" | sed -n 's/.*"entries": \([0-9]*\).*/\1/p')
printf '\n%-22s %10s %14s %12s  %s\n' pipeline seconds bytes peak_rss_kb notes
if [ -z "${SKIP_REFERENCE:-}" ]; then
  p_t=$(stat_of packer-maas-pigz 1); p_s=$(stat_of packer-maas-pigz 2)
  g_t=$(stat_of packer-maas-gzip 1); g_s=$(stat_of packer-maas-gzip 2)
  printf '%-22s %10s %14s %12s  %s\n' "packer-maas pigz -9" "$p_t" "$p_s" "-" "method=${METHOD[pigz]:-?}"
  printf '%-22s %10s %14s %12s  %s\n' "packer-maas gzip" "$g_t" "$g_s" "-" "method=${METHOD[gzip]:-?}"
fi
printf '%-22s %10s %14s %12s  %s\n' "kiln maas-tgz" "$k_t" "$k_s" "$k_m" "entries=$entries (no scrub)"
if [ -z "${SKIP_REFERENCE:-}" ]; then
  # printf gives the leading zero bc leaves out (JSON needs it).
  rt=$(printf "%.3f" "$(echo "scale=6; $k_t / $p_t" | bc)"); rs=$(printf "%.4f" "$(echo "scale=6; $k_s / $p_s" | bc)")
  rg=$(echo "scale=3; $k_t / $g_t" | bc)
  echo
  echo "kiln / pigz-pipeline: time ${rt}x (goal <= 0.25x), size ${rs}x (goal <= 1)"
  echo "kiln / gzip-pipeline: time ${rg}x"
  printf '{"bench":"maas-tgz","image":"%s","runs":%d,"entries":%s,"reference_method":"%s","pigz":{"seconds":%s,"bytes":%s},"gzip":{"seconds":%s,"bytes":%s},"kiln":{"seconds":%s,"bytes":%s,"peak_rss_kb":%s},"time_ratio_vs_pigz":%s,"size_ratio_vs_pigz":%s}\n' \
    "$IMAGE" "$RUNS" "${entries:-null}" "${METHOD[pigz]:-unknown}" "$p_t" "$p_s" "$g_t" "$g_s" "$k_t" "$k_s" "$k_m" "$rt" "$rs"
else
  printf '{"bench":"maas-tgz","image":"%s","runs":%d,"entries":%s,"kiln":{"seconds":%s,"bytes":%s,"peak_rss_kb":%s}}\n' \
    "$IMAGE" "$RUNS" "${entries:-null}" "$k_t" "$k_s" "$k_m"
fi
