#!/usr/bin/python3
"""Run a command and write the peak resident set of its own process.

usage: peak_rss.py OUT_KB CMD...

Polls /proc/PID/status VmHWM every 100 ms and writes the highest value
(KiB) to OUT_KB; exits with the command's status. Unlike GNU time's %M,
children (kiln's QEMU) are not counted.
"""
import subprocess, sys, time

out, cmd = sys.argv[1], sys.argv[2:]
child = subprocess.Popen(cmd)


def hwm():
    try:
        with open(f"/proc/{child.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


peak = 0
while child.poll() is None:
    peak = max(peak, hwm())
    time.sleep(0.1)
with open(out, "w") as f:
    f.write(f"{peak}\n")
sys.exit(child.returncode)
