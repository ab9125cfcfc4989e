#!/usr/bin/python3
"""The report of benches/cache-maas-style.sh, from its work directory.

usage: cache_report.py WORKDIR

Reads what the bench left there (NAME.wall "T0 T1" or "failed STATUS",
NAME.ts time-stamped output, NAME.probe.json from guest_probe.py,
NAME.vms.json from vm_watch.py, first-entries/*.json the cache entries'
meta.json after the first build) and prints a table and one JSON line
{"bench": "cache-maas-style", ...}.

Phases (as build_phases.py): boot_to_sshd = QEMU start -> sshd banner,
provisioning = first provisioner -> halt, shutdown = halt -> QEMU exit,
overhead = wall minus those three. kiln checkpoints after wait_ssh and after
each provisioner: the ones inside the provisioning window are moved from
"provisioning" to kiln's overhead (a checkpoint's duration is taken from
the line before kiln's "Cached …" line to that line).
"""
import glob, json, os, re, sys

work = sys.argv[1]
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def read(name):
    try:
        with open(os.path.join(work, name), errors="replace") as f:
            return f.read()
    except OSError:
        return None


def wall(name):
    s = read(name + ".wall")
    if not s or s.startswith("failed"):
        return None, (s or "not run").strip()
    t0, t1 = map(float, s.split())
    return (t0, t1), None


def ui(name):
    lines = []
    for line in (read(name + ".ts") or "").splitlines():
        ts, _, rest = line.partition(" ")
        try:
            lines.append((float(ts), ANSI.sub("", rest)))
        except ValueError:
            pass
    return lines


def first(lines, pattern):
    r = re.compile(pattern)
    return next((t for t, s in lines if r.search(s)), None)


def phases(name):
    span, err = wall(name)
    res = {"wall": None}
    if span is None:
        res["error"] = err
        return res
    t0, t1 = span
    res["wall"] = t1 - t0
    lines = ui(name)
    try:
        probe = json.loads(read(name + ".probe.json") or "{}")
    except ValueError:
        probe = {}
    qs, sshd, qe = probe.get("qemu_started"), probe.get("sshd_listening"), probe.get("qemu_exited")
    fp = first(lines, r"Provisioning with|Uploading ")
    halt = first(lines, r"Gracefully halting|Halting the virtual machine")
    conn = first(lines, r"Connected to SSH!")
    got = dict(qemu_started=qs, sshd_listening=sshd, qemu_exited=qe, connected=conn, first_provisioner=fp, halt=halt)
    if None in got.values():
        res["error"] = "milestones missing: " + ", ".join(k for k, v in got.items() if v is None)
        return res
    res.update(boot_to_sshd=sshd - qs, provisioning=halt - fp, shutdown=qe - halt,
               sshd_to_first=fp - sshd, start_to_qemu=qs - t0, after_qemu_exit=t1 - qe)
    res["overhead"] = res["wall"] - res["boot_to_sshd"] - res["provisioning"] - res["shutdown"]
    res["_window"] = (fp, halt)
    return res


CACHED = re.compile(r"Cached (.+?) as (\S+) \(guest paused ([0-9.]+) s; disk ([^,]+), state ([^)]+)\)")


def checkpoints(name):
    lines = ui(name)
    metas = {}
    for p in glob.glob(os.path.join(work, "first-entries", "*.json")):
        try:
            m = json.load(open(p))
        except (OSError, ValueError):
            continue
        metas[m.get("step")] = m
    out = []
    for i, (t, s) in enumerate(lines):
        m = CACHED.search(s)
        if not m:
            continue
        step = m.group(1)
        meta = metas.get(step, {})
        state = meta.get("state") or {}
        out.append({
            "step": step,
            "key": m.group(2),
            "pause_s": float(m.group(3)),
            "duration_s": t - lines[i - 1][0] if i else None,
            "at": t,
            "state_bytes": state.get("bytes"),
            "state_compression": state.get("compression"),
            "state_save_s": state["save_millis"] / 1000 if "save_millis" in state else None,
            "disk_bytes": sum(d.get("bytes", 0) for d in meta.get("disks", [])) if meta else None,
            "vars_bytes": (meta.get("vars") or {}).get("bytes"),
            "printed_disk": m.group(4).strip(),
            "printed_state": m.group(5).strip(),
        })
    other = [s.strip() for _, s in lines if re.search(r"is cached already|is not cached|checkpoint after .* failed|not caching", s)]
    return out, other


def cache_lines(name):
    return [s.strip() for _, s in ui(name) if "Step cache" in s or "cache" in s.lower() and "miss" in s.lower()]


ratio = lambda a, b: (a / b) if a is not None and b else None

deps = {t: (lambda w: (w[0][1] - w[0][0]) if w[0] else None)(wall(t + "-deps")) for t in ("packer", "kiln")}
pk, kf = phases("packer-first"), phases("kiln-first")
cps, cp_other = checkpoints("kiln-first")
window = kf.pop("_window", None)
pk.pop("_window", None)
if window and "overhead" in kf:
    inside = sum(c["duration_s"] or 0 for c in cps if window[0] <= c["at"] <= window[1])
    kf["checkpoints_in_provisioning"] = inside
    kf["provisioning_guest"] = kf["provisioning"] - inside
    kf["overhead_incl_checkpoints"] = kf["overhead"] + inside
kf["checkpoints_total_s"] = sum(c["duration_s"] or 0 for c in cps) if cps else None
try:
    kf["peak_rss_mib"] = int((read("kiln-first.rss_kb") or "").split()[-1]) / 1024
except (ValueError, IndexError):
    pass
for c in cps:
    c.pop("at", None)

last = phases("kiln-last")
last.pop("_window", None)
last_cache = cache_lines("kiln-last")
hit = [s for s in last_cache if "Step cache: reusing" in s]
last["cache_hit"] = bool(hit)
last["cache_messages"] = last_cache
last["ratio_to_full"] = ratio(last["wall"], kf["wall"])
last["ratio_to_packer"] = ratio(last["wall"], pk["wall"])

ppw, pperr = wall("kiln-pp")
# (vm_watch.py's first version wrote only "qemu_processes", probes included.)
try:
    vms = json.loads(read("kiln-pp.vms.json") or "null")
except ValueError:
    vms = None
pp = {"wall": (ppw[1] - ppw[0]) if ppw else None, "error": pperr,
      "vm_started": (vms.get("vms", vms.get("qemu_processes", 0)) > 0) if vms else None,
      "vms": vms.get("vms", vms.get("qemu_processes")) if vms else None,
      "qemu_runs": [q["argv"][:100] for q in vms.get("qemu", [])] if vms else None,
      "cache_messages": cache_lines("kiln-pp")}
if pp["error"] is None:
    del pp["error"]


def f(x, w=10, p=2):
    return ("%*.*f" % (w, p, x)) if isinstance(x, (int, float)) and not isinstance(x, bool) else "%*s" % (w, "-" if x is None else x)


print("\nfirst build, image build alone (-only=qemu.maas), cache on (kiln) / Packer 1.6.6")
print("%-34s %10s %10s %8s" % ("phase (s)", "packer", "kiln", "ratio"))
for k in ("wall", "boot_to_sshd", "provisioning", "shutdown", "overhead", "sshd_to_first"):
    r = ratio(kf.get(k), pk.get(k))
    print("%-34s %s %s %8s" % (k, f(pk.get(k)), f(kf.get(k)), "%.2fx" % r if r else "-"))
print("%-34s %10s %s" % ("kiln: checkpoints in provisioning", "", f(kf.get("checkpoints_in_provisioning"))))
print("%-34s %10s %s" % ("kiln: guest provisioning alone", "", f(kf.get("provisioning_guest"))))
print("%-34s %10s %s   (goal <= 1.5 s)" % ("kiln: overhead incl. checkpoints", "", f(kf.get("overhead_incl_checkpoints"))))
print("%-34s %s %s" % ("null build (seed + vars)", f(deps["packer"]), f(deps["kiln"])))
print("first build wall ratio kiln/packer: %s (goal <= 0.92)" % ("%.3f" % ratio(kf["wall"], pk["wall"]) if ratio(kf["wall"], pk["wall"]) else "-"))
for name, r in (("packer", pk), ("kiln", kf)):
    if "error" in r:
        print("note: %s first build: %s" % (name, r["error"]))

print("\ncheckpoints of the first build (pause: kiln's own figure, 0.1 s resolution)")
print("%-22s %8s %10s %12s %10s %12s" % ("after step", "pause s", "took s", "state MiB", "save s", "disk MiB"))
mib = lambda b: b / 1048576 if b is not None else None
for c in cps:
    print("%-22s %s %s %s %s %s" % (c["step"], f(c["pause_s"], 8, 1), f(c["duration_s"]), f(mib(c["state_bytes"]), 12, 1),
                                    f(c["state_save_s"]), f(mib(c["disk_bytes"]), 12, 1)))
if not cps:
    print("(none reported: kiln printed no \"Cached … (guest paused …)\" line)")
for s in cp_other:
    print("  kiln said: " + s)

print("\nrebuild after one byte of scripts/last.sh, -only=qemu.maas (no null build)")
print("  wall %s s; / full build %s (goal <= 0.20); / packer %s; cache %s" % (
    f(last["wall"], 0, 1), f(last["ratio_to_full"], 0, 3), f(last["ratio_to_packer"], 0, 3), "HIT" if last["cache_hit"] else "MISS"))
for s in last_cache:
    print("  kiln said: " + s)
print("\nrebuild after only the post-processor changed")
print("  wall %s s; VM started: %s (goal: none)" % (f(pp["wall"], 0, 1), {True: "yes", False: "no", None: "unknown"}[pp["vm_started"]]))
for s in pp["cache_messages"]:
    print("  kiln said: " + s)

print(json.dumps({
    "bench": "cache-maas-style",
    "kiln_version": (read("kiln-version") or "").strip(),
    "first": {"packer": pk, "kiln": kf, "ratio": ratio(kf["wall"], pk["wall"])},
    "deps": deps,
    "checkpoints": cps,
    "checkpoint_notes": cp_other,
    "pause_reported": bool(cps),
    "max_pause_s": max((c["pause_s"] for c in cps), default=None),
    "state_bytes_total": sum(c["state_bytes"] or 0 for c in cps) if cps else None,
    "rebuild_last": last,
    "rebuild_post_processor": pp,
}))
