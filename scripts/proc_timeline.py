#!/usr/bin/env python3
"""Samples a process tree from /proc until its root exits (scripts/bench-fleet-real.sh).

    proc_timeline.py ROOT_PID T0_EPOCH CSV_OUT JSON_OUT [INTERVAL_S]

Every INTERVAL_S (0.5 s) it walks /proc, finds ROOT_PID's descendants and records,
per process: parent, command, start (from /proc/PID/stat, exact), last time seen
(its end, to within one interval), CPU (its own user+sys at the last sample: the
last interval of a process is not seen), peak RSS and peak private memory (RSS less
the shared file pages: the provider's ~400 MiB of binary are held once however many
run). Per sample it sums both over the whole tree: the RSS sum counts a shared page
once per process mapping it, the private sum is what grows with each process. A process that lives less
than one interval may be missed; the tree's CPU total comes from /usr/bin/time.

CSV_OUT: one row per process, times in seconds from T0_EPOCH (the run's start).
JSON_OUT: the tree's peak RSS and when, the most terraform and provider processes
alive at once, the samples taken, and this sampler's own CPU.
"""

import csv
import json
import os
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def boot_time():
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("btime "):
                return int(line.split()[1])
    return 0


def stat(pid):
    """(ppid, utime+stime ticks, starttime ticks) or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    # The command (field 2) may hold spaces and parentheses: split after the last ')'.
    rest = s[s.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state): field N is rest[N - 3].
    return int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[19])


def memory(pid):
    """(resident bytes, private bytes): private = resident less the shared (file) pages,
    which the kernel holds once for every process mapping the same binary."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            resident, shared = (int(x) for x in f.read().split()[1:3])
    except (OSError, ValueError):
        return 0, 0
    return resident * PAGE, max(0, resident - shared) * PAGE


def command(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return "?"
    if not argv:
        return "?"
    words = [os.path.basename(argv[0])]
    # The tool and its subcommand: "terraform plan", "packer build",
    # "stamp __stamp-tool-relay ... terraform apply" keeps its first words.
    for a in argv[1:]:
        if len(words) >= 4:
            break
        if a.startswith("-"):
            continue
        words.append(os.path.basename(a) if "/" in a else a)
    return " ".join(words)[:120]


def kind(cmd):
    first = cmd.split(" ", 1)[0]
    if first.startswith("terraform-provider-"):
        return "provider"
    if first == "terraform":
        return "terraform"
    return ""


def main():
    root, t0, csv_out, json_out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
    interval = float(sys.argv[5]) if len(sys.argv) > 5 else 0.5
    btime = boot_time()
    procs = {}  # pid -> dict
    peak = {"rss": 0, "at": 0.0, "private": 0, "private_at": 0.0, "terraform": 0, "provider": 0, "tree": 0}
    samples = 0
    while True:
        now = time.time()
        parent = {}
        info = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            st = stat(int(name))
            if st is not None:
                parent[int(name)] = st[0]
                info[int(name)] = st
        if root not in info:
            break
        children = {}
        for pid, ppid in parent.items():
            children.setdefault(ppid, []).append(pid)
        tree, todo = [], [root]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo.extend(children.get(pid, []))
        total = private_total = 0
        counts = {"terraform": 0, "provider": 0}
        for pid in tree:
            ppid, cpu, start = info[pid]
            rss, private = memory(pid)
            key = (pid, start)  # a pid reused later is another process
            p = procs.get(key)
            if p is None:
                p = procs[key] = {
                    "pid": pid,
                    "ppid": ppid,
                    "command": command(pid),
                    "start": btime + start / TICK - t0,
                    "end": now - t0,
                    "cpu": 0.0,
                    "rss": 0,
                    "private": 0,
                }
            p["end"] = now - t0
            p["cpu"] = cpu / TICK
            p["rss"] = max(p["rss"], rss)
            p["private"] = max(p["private"], private)
            total += rss
            private_total += private
            k = kind(p["command"])
            if k:
                counts[k] += 1
        samples += 1
        if total > peak["rss"]:
            peak.update(rss=total, at=now - t0, tree=len(tree))
        if private_total > peak["private"]:
            peak.update(private=private_total, private_at=now - t0)
        peak["terraform"] = max(peak["terraform"], counts["terraform"])
        peak["provider"] = max(peak["provider"], counts["provider"])
        time.sleep(max(0.0, interval - (time.time() - now)))

    rows = sorted(procs.values(), key=lambda p: (p["start"], p["pid"]))
    with open(csv_out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["pid", "ppid", "command", "start_s", "end_s", "cpu_s", "peak_rss_mib", "peak_private_mib"])
        for p in rows:
            w.writerow([p["pid"], p["ppid"], p["command"], f"{p['start']:.2f}", f"{p['end']:.2f}", f"{p['cpu']:.2f}", f"{p['rss'] / 2**20:.1f}", f"{p['private'] / 2**20:.1f}"])
    # The root's direct children: the command the benchmark timed (stamp).
    own = sum(p["cpu"] for p in rows if p["ppid"] == root)
    me = os.times()
    with open(json_out, "w") as f:
        json.dump(
            {
                "peak_rss_mib": round(peak["rss"] / 2**20, 1),
                "peak_at_s": round(peak["at"], 1),
                "peak_private_mib": round(peak["private"] / 2**20, 1),
                "peak_private_at_s": round(peak["private_at"], 1),
                "peak_processes": peak["tree"],
                "max_terraform": peak["terraform"],
                "max_providers": peak["provider"],
                "stamp_cpu_s": round(own, 2),
                "processes": len(rows),
                "samples": samples,
                "interval_s": interval,
                "sampler_cpu_s": round(me.user + me.system, 2),
            },
            f,
            indent=1,
        )


if __name__ == "__main__":
    main()
