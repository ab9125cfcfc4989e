#!/usr/bin/python3
"""Run a command and record whether it started a QEMU.

usage: vm_watch.py OUT.json CMD...

Polls /proc every 50 ms for qemu-system processes descended from the
command and writes {"vms": N, "first_vm_after_s": T or null, "qemu": [...]}:
a VM is a qemu-system with a `-drive` or `-incoming` (kiln also runs
qemu-system for host facts, e.g. `-machine help`: those are listed under
"qemu" but are not VMs). Exits with the command's status. (A QEMU that
lives less than 50 ms can be missed; a build VM lives far longer.)
"""
import json, os, subprocess, sys, time


def parent(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def qemu_argv(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return None
    return argv if argv and "qemu-system" in argv[0] else None


out, cmd = sys.argv[1], sys.argv[2:]
t0 = time.time()
child = subprocess.Popen(cmd)
seen, first, qemus = set(), None, []
while True:
    done = child.poll() is not None
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) in seen:
            continue
        argv = qemu_argv(p)
        if argv is None:
            continue
        a, hops = int(p), 0
        while a > 1 and a != child.pid and hops < 64:
            a, hops = parent(a), hops + 1
        if a == child.pid:
            seen.add(int(p))
            vm = "-drive" in argv or "-incoming" in argv
            qemus.append({"vm": vm, "after_s": time.time() - t0, "argv": " ".join(argv)[:300]})
            if vm and first is None:
                first = time.time() - t0
    if done:
        break
    time.sleep(0.05)
with open(out, "w") as f:
    json.dump({"vms": sum(q["vm"] for q in qemus), "first_vm_after_s": first, "qemu": qemus}, f)
sys.exit(child.returncode)
