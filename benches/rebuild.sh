#!/bin/bash
# A rebuild after changing only the last provisioner's script, in one run:
# kiln with its step cache (warmed by one build first), kiln without it
# (`--no-cache`), and Packer 1.6.6 (which always starts from the base).
#
#   KEEP=1      keep the work directory
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export CHECKPOINT_DISABLE=1

base_dir=$(fixtures/base-image/build.sh | tail -n 1)
base="$base_dir/base.qcow2"
sum="sha256:$(sha256sum "$base" | cut -d' ' -f1)"
cargo build --release --locked -p kiln >&2
kiln="$repo/target/release/kiln"
work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench-rebuild-XXXX")
cp -r "$repo/benches/templates/cloudimg-packer" "$work/template"
export KILN_CACHE_DIR="$work/cache"
vars=(-var "base_image=$base" -var "base_checksum=$sum")

# Wall seconds of one build; its log goes to $work/<name>.log.
timed() {
  local name=$1
  shift
  local t0 t1 status=0
  t0=$(date +%s.%N)
  (cd "$work" && "$@") >"$work/$name.log" 2>&1 || status=$?
  t1=$(date +%s.%N)
  if [ "$status" -ne 0 ]; then
    echo "$name failed ($status); see $work/$name.log" >&2
    echo null
    return
  fi
  echo "$t1 - $t0" | bc
}

change_last_script() {
  printf '\n# changed at %s\n' "$(date +%s.%N)" >>"$work/template/scripts/cleanup.sh"
}

echo "warming kiln's cache with one build..." >&2
warm=$(timed kiln-warm "$kiln" build -force "${vars[@]}" template)
change_last_script
echo "kiln, cached..." >&2
cached=$(timed kiln-cached "$kiln" build -force "${vars[@]}" template)
change_last_script
echo "kiln, --no-cache..." >&2
full=$(timed kiln-full "$kiln" build -force --no-cache "${vars[@]}" template)
change_last_script
if command -v packer >/dev/null; then
  echo "packer..." >&2
  packer=$(timed packer env TMPDIR="$work" packer build -force "${vars[@]}" template)
else
  packer=null
  echo "note: packer not installed (apt-get install packer): no Packer row" >&2
fi

python3 - "$warm" "$cached" "$full" "$packer" <<'PY'
import json, sys
num = lambda s: None if s == "null" else float(s)
warm, cached, full, packer = map(num, sys.argv[1:])
ratio = lambda a, b: (a / b) if a is not None and b else None
f = lambda x: "%9.1f" % x if x is not None else "%9s" % "-"
print("\n%-28s %9s" % ("rebuild, last script changed", "wall s"))
print("%-28s %s" % ("kiln (first build, warming)", f(warm)))
print("%-28s %s" % ("kiln cached", f(cached)))
print("%-28s %s" % ("kiln --no-cache", f(full)))
print("%-28s %s" % ("packer", f(packer)))
rc, rp = ratio(cached, full), ratio(cached, packer)
print("cached / full:   %s (goal <= 0.25x)" % ("%.3fx" % rc if rc else "-"))
print("cached / packer: %s" % ("%.3fx" % rp if rp else "-"))
print(json.dumps({"bench": "rebuild", "kiln_warm": warm, "kiln_cached": cached,
                  "kiln_full": full, "packer": packer,
                  "ratio_cached_full": rc, "ratio_cached_packer": rp}))
PY
if [ -z "${KEEP:-}" ]; then rm -rf "$work"; else echo "kept $work" >&2; fi
