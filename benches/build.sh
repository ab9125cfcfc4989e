#!/bin/bash
# The same cloud-image template built by Packer 1.6.6 and by kiln, in one
# run, on the test base image: wall time, each tool's overhead beyond the
# guest's own work (boot to sshd, provisioning, shutdown — measured from
# outside by benches/guest_probe.py), and sshd-listening -> first command.
#
#   RUNS=N      builds per tool (default 1; the table shows medians)
#   KEEP=1      keep the work directories
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
RUNS=${RUNS:-1}
export CHECKPOINT_DISABLE=1

base_dir=$(fixtures/base-image/build.sh | tail -n 1)
base="$base_dir/base.qcow2"
sum="sha256:$(sha256sum "$base" | cut -d' ' -f1)"
cargo build --release --locked -p kiln >&2
kiln="$repo/target/release/kiln"
template="$repo/benches/templates/cloudimg-packer"
results=$(mktemp)

stamp() { python3 -u -c 'import sys,time
for l in sys.stdin: sys.stdout.write("%.3f %s" % (time.time(), l)); sys.stdout.flush()'; }

run_one() {
  local tool=$1 work
  work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench-$tool-XXXX")
  (
    cd "$work"
    python3 "$repo/benches/guest_probe.py" probe.json &
    probe=$!
    t0=$(date +%s.%N)
    case $tool in
      packer) TMPDIR="$work" packer build -var "base_image=$base" -var "base_checksum=$sum" "$template" ;;
      kiln) python3 "$repo/benches/peak_rss.py" rss_kb "$kiln" build --no-cache -var "base_image=$base" -var "base_checksum=$sum" "$template" ;;
    esac 2>&1 | stamp > ui.ts || true
    t1=$(date +%s.%N)
    wait $probe || true
    python3 "$repo/benches/build_phases.py" "$tool" "$t0" "$t1" ui.ts probe.json
  ) | tee -a "$results"
  if [ -z "${KEEP:-}" ]; then rm -rf "$work"; else echo "kept $work" >&2; fi
}

if ! command -v packer >/dev/null; then
  echo '{"tool": "packer", "error": "packer not installed (apt-get install packer)"}' | tee -a "$results"
fi
for i in $(seq "$RUNS"); do
  command -v packer >/dev/null && run_one packer
  run_one kiln
done

python3 - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(tool, key):
    v = [r[key] for r in rows if r["tool"] == tool and key in r]
    return statistics.median(v) if v else None
keys = ["wall", "boot_to_sshd", "provisioning", "shutdown", "overhead", "sshd_to_first", "peak_rss_mib"]
print("\n%-16s %10s %10s %8s" % ("phase (median s)", "packer", "kiln", "ratio"))
out = {}
for k in keys:
    p, k2 = med("packer", k), med("kiln", k)
    ratio = (k2 / p) if p and k2 is not None else None
    out[k] = {"packer": p, "kiln": k2, "ratio": ratio}
    f = lambda x: "%10.2f" % x if x is not None else "%10s" % "-"
    print("%-16s %s %s %8s" % (k, f(p), f(k2), "%.2fx" % ratio if ratio else "-"))
for r in rows:
    if "error" in r:
        print("note: %s: %s" % (r["tool"], r["error"]))
print(json.dumps({"bench": "build", "runs": len(rows), "phases": out}))
PY
