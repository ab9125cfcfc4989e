#!/usr/bin/python3
"""Phases of one `packer build` or `kiln build` of the cloud-image bench.

usage: build_phases.py TOOL T_START T_END ui.ts probe.json

ui.ts is the tool's stdout with a unix time before each line; probe.json
comes from guest_probe.py. Both tools print the same milestones
("Connected to SSH!", "Provisioning with…"/"Uploading…", "Gracefully
halting…"), so one parser serves both. Prints one JSON object.

  wall            T_END - T_START
  boot_to_sshd    QEMU process start -> guest sshd banner   (the guest's work)
  provisioning    first provisioner -> halt                 (the guest's work)
  shutdown        halt -> QEMU exit                         (the guest's work)
  overhead        wall minus the three above                (the tool's own cost)
  sshd_to_first   sshd banner -> first provisioner starts
"""
import json, re, sys

tool, t_start, t_end, ui_path, probe_path = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
ui = []
for line in open(ui_path, errors="replace"):
    ts, _, rest = line.partition(" ")
    try:
        ui.append((float(ts), re.sub(r"\x1b\[[0-9;]*m", "", rest.rstrip("\n"))))
    except ValueError:
        pass
probe = json.load(open(probe_path))


def first(pattern):
    r = re.compile(pattern)
    for t, s in ui:
        if r.search(s):
            return t
    return None


connected = first(r"Connected to SSH!")
first_prov = first(r"Provisioning with|Uploading ")
halt = first(r"Gracefully halting|Halting the virtual machine")
qs, sshd, qe = probe.get("qemu_started"), probe.get("sshd_listening"), probe.get("qemu_exited")
res = {"tool": tool, "wall": t_end - t_start}
if None not in (qs, sshd, qe, first_prov, halt, connected):
    res["boot_to_sshd"] = sshd - qs
    res["provisioning"] = halt - first_prov
    res["shutdown"] = qe - halt
    res["overhead"] = res["wall"] - res["boot_to_sshd"] - res["provisioning"] - res["shutdown"]
    res["sshd_to_connected"] = connected - sshd
    res["sshd_to_first"] = first_prov - sshd
    res["start_to_qemu"] = qs - t_start
    res["after_qemu_exit"] = t_end - qe
else:
    res["error"] = "milestones missing: " + ", ".join(
        k for k, v in dict(qemu_started=qs, sshd_listening=sshd, qemu_exited=qe, connected=connected,
                           first_provisioner=first_prov, halt=halt).items() if v is None)
try:
    # GNU time's %M: the kiln process's peak resident set, in KiB.
    res["peak_rss_mib"] = int(open("rss_kb").read().split()[-1]) / 1024
except (OSError, ValueError, IndexError):
    pass
print(json.dumps(res))
