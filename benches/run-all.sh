#!/bin/bash
# Every benchmark against its reference peer, in one run on this machine,
# and one table of ratios at the end. Peers come from Debian packages
# (packer) or ../shared/bench (the packer-maas tarball pipeline); a missing
# peer gives a row that says so.
#
#   benches/run-all.sh            all of them (tens of minutes under TCG)
#   ONLY="validate maas" benches/run-all.sh
#   (names: validate build rebuild maas cache)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
scripts/deps.sh
out=$(mktemp -d "${TMPDIR:-/tmp}/kiln-benches-XXXX")
only=${ONLY:-validate build rebuild maas cache}

run() { # NAME SCRIPT...
  local name=$1; shift
  echo "=== $name ===" >&2
  if "$@" 2>&1 | tee "$out/$name.log" >&2; then :; else echo "($name failed; see $out/$name.log)" >&2; fi
  grep '^{"bench"' "$out/$name.log" | tail -n1 > "$out/$name.json" || true
}

for b in $only; do
  case $b in
    validate) run validate benches/validate.sh ;;
    build) run build benches/build.sh ;;
    rebuild) run rebuild benches/rebuild.sh ;;
    maas) run maas benches/maas-tgz.sh ;;
    cache) run cache benches/cache-maas-style.sh ;;
  esac
done

python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
def load(name):
    try:
        return json.loads(open(os.path.join(out, name + ".json")).read() or "null")
    except (OSError, ValueError):
        return None
rows = []
v = load("validate")
if v:
    for s in v.get("sizes", []):
        rows.append(("validate %d files" % s["files"], s["kiln_s"], s["packer_s"], s["ratio"], "<= 0.02 at 500"))
    rows.append(("validate growth 2000/500", v.get("growth_2000_500"), None, None, "<= 4.5"))
b = load("build")
if b:
    p = b["phases"]
    rows.append(("build wall (s)", p["wall"]["kiln"], p["wall"]["packer"], p["wall"]["ratio"], "<= 0.92"))
    rows.append(("build overhead (s)", p["overhead"]["kiln"], p["overhead"]["packer"], p["overhead"]["ratio"], "kiln <= 1 s"))
    rows.append(("sshd -> first command (s)", p["sshd_to_first"]["kiln"], p["sshd_to_first"]["packer"], p["sshd_to_first"]["ratio"], "kiln <= 0.5 s"))
    rows.append(("kiln peak RSS (MiB)", p.get("peak_rss_mib", {}).get("kiln"), None, None, "<= 64"))
r = load("rebuild")
if r:
    rows.append(("rebuild, last step changed (s)", r.get("kiln_cached"), r.get("kiln_full"), r.get("ratio_cached_full"), "<= 0.25x kiln full"))
    rows.append(("rebuild vs packer (s)", r.get("kiln_cached"), r.get("packer"), r.get("ratio_cached_packer"), "-"))
m = load("maas")
if m:
    rows.append(("maas tgz time (s)", m["kiln"]["seconds"], (m.get("pigz") or {}).get("seconds"), m.get("time_ratio_vs_pigz"), "<= 0.25x pigz pipeline"))
    rows.append(("maas tgz size (bytes)", m["kiln"]["bytes"], (m.get("pigz") or {}).get("bytes"), m.get("size_ratio_vs_pigz"), "<= 1"))
    rows.append(("maas tgz peak RSS (KiB)", m["kiln"]["peak_rss_kb"], None, None, "constant"))
c = load("cache")
if c:
    first, cl, pp = c.get("first") or {}, c.get("rebuild_last") or {}, c.get("rebuild_post_processor") or {}
    fk, fp = first.get("kiln") or {}, first.get("packer") or {}
    rows.append(("cache: first build wall (s)", fk.get("wall"), fp.get("wall"), first.get("ratio"), "<= 0.92"))
    rows.append(("cache: overhead incl. ckpts (s)", fk.get("overhead_incl_checkpoints"), fp.get("overhead"), None, "kiln <= 1.5 s"))
    rows.append(("cache: max checkpoint pause (s)", c.get("max_pause_s"), None, None, "<= 0.1 (background snapshot)"))
    sb = c.get("state_bytes_total")
    rows.append(("cache: state written (MiB)", sb / 1048576 if sb is not None else None, None, None, "-"))
    rows.append(("cache: rebuild, last.sh (s)", cl.get("wall"), fk.get("wall"), cl.get("ratio_to_full"), "<= 0.20x kiln full (hit: %s)" % cl.get("cache_hit")))
    vm = pp.get("vm_started")
    rows.append(("cache: post-processor only, VMs", pp.get("vms"), None, None, "0 (started: %s)" % vm))
def f(x):
    if x is None:
        return "-"
    if isinstance(x, float):
        return "%.3f" % x
    return str(x)
print("\n%-34s %14s %14s %10s  %s" % ("benchmark", "kiln", "reference", "ratio", "goal"))
for r in rows:
    print("%-34s %14s %14s %10s  %s" % (r[0], f(r[1]), f(r[2]), f(r[3]), r[4]))
missing = [n for n in ("validate", "build", "rebuild", "maas", "cache") if load(n) is None]
if missing:
    print("no result for: " + ", ".join(missing) + " (not run, failed, or its peer is missing; see the logs in " + out + ")")
PY
