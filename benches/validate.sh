#!/usr/bin/env bash
# Times `kiln validate` against `packer validate` on generated template
# directories with 50, 500 and 2000 variable files (10 variables each) plus
# 20 auto var files whose assignments overlap, in the same run.
#
# Usage: benches/validate.sh [SIZE...]        (default: 50 500 2000)
#   KILN_BENCH_RUNS=N        kiln runs per size, best taken (default 5)
#   KILN_BENCH_PACKER_MAX=N  skip packer above N files (default: no limit)
#
# Goals: kiln <= 0.02x packer at 500 files; kiln at 2000 files within 4.5x
# of 500 (linear growth). Prints a table and one JSON line.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
sizes=("$@")
[ ${#sizes[@]} -eq 0 ] && sizes=(50 500 2000)
runs=${KILN_BENCH_RUNS:-5}
packer_max=${KILN_BENCH_PACKER_MAX:-999999999}

cargo build --release --quiet -p kiln --manifest-path "$root/Cargo.toml"
kiln="${CARGO_TARGET_DIR:-$root/target}/release/kiln"
packer=$(command -v packer || true)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tmp"
# Packer writes a large temporary log with many variables: keep it in $work.
export TMPDIR="$work/tmp" CHECKPOINT_DISABLE=1

generate() {
  local n=$1 dir=$2 i j
  mkdir -p "$dir"
  for ((i = 0; i < n; i++)); do
    {
      for ((j = 0; j < 10; j++)); do
        printf 'variable "v_%d_%d" {\n  type        = string\n  default     = "value-%d-%d"\n  description = "variable %d of file %d"\n}\n\n' "$i" "$j" "$i" "$j" "$j" "$i"
      done
    } > "$dir/vars_$(printf '%05d' "$i").pkr.hcl"
  done
  cat > "$dir/main.pkr.hcl" <<'HCL'
locals {
  first = "${var.v_0_0}-${var.v_0_1}"
}

source "null" "bench" {
  communicator = "none"
}

build {
  sources = ["source.null.bench"]
}
HCL
  # 20 auto var files; each sets the first variable of a window of files,
  # windows overlapping so later files override earlier ones.
  local total=$n
  for ((a = 0; a < 20; a++)); do
    {
      for ((i = a * total / 40; i < a * total / 40 + total / 10 && i < total; i++)); do
        printf 'v_%d_0 = "auto-%d"\n' "$i" "$a"
      done
    } > "$dir/$(printf '%02d' "$a")-overlay.auto.pkrvars.hcl"
  done
}

now() { date +%s.%N; }

time_best() { # runs command N times, prints the best wall time in seconds
  local n=$1; shift
  local best="" t0 t1 d
  for ((r = 0; r < n; r++)); do
    t0=$(now)
    "$@" > /dev/null 2>&1 || { echo "command failed: $*" >&2; "$@" >&2 || true; exit 1; }
    t1=$(now)
    d=$(echo "$t1 - $t0" | bc -l)
    if [ -z "$best" ] || [ "$(echo "$d < $best" | bc -l)" = 1 ]; then best=$d; fi
  done
  printf '%.4f' "$best"
}

declare -A kt pt
printf '%8s %8s %12s %12s %10s\n' files vars kiln_s packer_s ratio
json_sizes=""
for n in "${sizes[@]}"; do
  dir="$work/t$n"
  generate "$n" "$dir"
  kt[$n]=$(time_best "$runs" "$kiln" validate "$dir")
  if [ -n "$packer" ] && [ "$n" -le "$packer_max" ]; then
    pt[$n]=$(time_best 1 "$packer" validate "$dir")
    ratio=$(printf '%.4f' "$(echo "${kt[$n]} / ${pt[$n]}" | bc -l)")
  else
    pt[$n]=null
    ratio=null
  fi
  rm -rf "$work/tmp"/* 2>/dev/null || true
  printf '%8d %8d %12s %12s %10s\n' "$n" "$((n * 10))" "${kt[$n]}" "${pt[$n]}" "$ratio"
  json_sizes+="${json_sizes:+,}{\"files\":$n,\"variables\":$((n * 10)),\"kiln_s\":${kt[$n]},\"packer_s\":${pt[$n]},\"ratio\":$ratio}"
  rm -rf "$dir"
done

growth=null
if [ -n "${kt[500]:-}" ] && [ -n "${kt[2000]:-}" ]; then
  growth=$(printf '%.2f' "$(echo "${kt[2000]} / ${kt[500]}" | bc -l)")
  echo "growth 2000/500 files: ${growth}x (goal <= 4.5x)"
fi
if [ "${pt[500]:-null}" != null ]; then
  echo "kiln/packer at 500 files: $(printf '%.4f' "$(echo "${kt[500]} / ${pt[500]}" | bc -l)") (goal <= 0.02)"
fi
echo "{\"bench\":\"validate\",\"runs\":$runs,\"sizes\":[$json_sizes],\"growth_2000_500\":$growth}"
