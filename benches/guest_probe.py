#!/usr/bin/python3
"""Watch a build from the outside, the same way for every tool.

usage: guest_probe.py OUT.json

Waits for a qemu-system process with an SSH port forward to appear, then
records (unix times, ms resolution):
  qemu_started    the QEMU process exists
  sshd_listening  the guest's sshd sends its banner through the forward
  qemu_exited     the QEMU process is gone
The banner is polled every 50 ms with a fresh TCP connection that is closed
right after the banner (or after 2 s without one: under TCG a busy guest's
sshd can take longer than 200 ms to answer, and the time recorded is when
the banner arrives either way).
"""
import json, os, re, socket, sys, time

out = sys.argv[1]
deadline = time.time() + 3600


def find_qemu():
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if not argv or b"qemu-system" not in argv[0]:
            continue
        for a in argv:
            m = re.search(rb"hostfwd=tcp:[0-9.]*:(\d+)-:22", a)
            if m:
                return int(pid), int(m.group(1))
    return None


def alive(pid):
    return os.path.exists(f"/proc/{pid}")


ev = {}
found = None
while time.time() < deadline and not found:
    found = find_qemu()
    if not found:
        time.sleep(0.02)
if not found:
    sys.exit("no QEMU with an SSH port forward appeared")
pid, port = found
ev["qemu_started"] = time.time()
ev["ssh_port"] = port

while alive(pid) and "sshd_listening" not in ev:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=0.2)
        s.settimeout(2.0)
        try:
            if s.recv(8).startswith(b"SSH-"):
                ev["sshd_listening"] = time.time()
        except OSError:
            pass
        s.close()
    except OSError:
        pass
    time.sleep(0.05)

while alive(pid):
    time.sleep(0.02)
ev["qemu_exited"] = time.time()
with open(out, "w") as f:
    json.dump(ev, f)
