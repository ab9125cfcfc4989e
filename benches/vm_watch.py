#!/usr/bin/python3
"""Run a command and record whether it started a QEMU.

usage: vm_watch.py OUT.json CMD...

Polls /proc every 50 ms for qemu-system processes descended from the
command and writes {"qemu_processes": N, "first_qemu_after_s": T or null};
exits with the command's status. (A QEMU that lives less than 50 ms can be
missed; a build VM lives far longer.)
"""
import json, os, subprocess, sys, time


def parent(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def is_qemu(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv0 = f.read().split(b"\0")[0]
    except OSError:
        return False
    return b"qemu-system" in argv0


out, cmd = sys.argv[1], sys.argv[2:]
t0 = time.time()
child = subprocess.Popen(cmd)
seen, first = set(), None
while True:
    done = child.poll() is not None
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) in seen or not is_qemu(p):
            continue
        a, hops = int(p), 0
        while a > 1 and a != child.pid and hops < 64:
            a, hops = parent(a), hops + 1
        if a == child.pid:
            seen.add(int(p))
            first = first if first is not None else time.time() - t0
    if done:
        break
    time.sleep(0.05)
with open(out, "w") as f:
    json.dump({"qemu_processes": len(seen), "first_qemu_after_s": first}, f)
sys.exit(child.returncode)
