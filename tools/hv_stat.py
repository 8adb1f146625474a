#!/usr/bin/env python3
"""Live per-VM counters of a running hv, like kvm_stat (tools/hv stat).

hv prints one line per VM per period when booted with hv.stat-ms=N (hv/vm_stat.h):
    hv: vm1: stat: t=2000 exits=34265 ept-violation=22619 ... faults-fixed=1 ...
Every value is cumulative; this script follows the serial log, and for each new line shows
each counter's total and its rate per second since the VM's previous line, sorted by rate.

    hv_stat.py LOG            follow LOG until hv powers off (the console line
                              "hv: power off (status ...)" or "hv: reset (status ...)")
    hv_stat.py --once LOG     read LOG as it is and print the table of its last lines

On a terminal the table is redrawn in place; otherwise each update is printed after the last
one, so a log of `tools/hv stat` in CI shows every period.
"""
import argparse
import os
import re
import sys
import time

STAT_RE = re.compile(r"^hv: vm(\d+): stat: t=(\d+)((?: [A-Za-z0-9/_.-]+=\d+)*)\s*$")
DONE_RE = re.compile(r"^hv: (power off|reset) \(status")


def parse(line):
    """(vm, t_ms, {counter: value}) for a stat line, else None."""
    m = STAT_RE.match(line.rstrip("\r\n"))
    if not m:
        return None
    values = {}
    for tok in m.group(3).split():
        key, _, val = tok.partition("=")
        values[key] = int(val)
    return int(m.group(1)), int(m.group(2)), values


class Table:
    def __init__(self):
        self.last = {}  # vm -> (t_ms, values)
        self.rates = {}  # vm -> {counter: per second}

    def update(self, vm, t_ms, values):
        prev = self.last.get(vm)
        rates = {}
        if prev and t_ms > prev[0]:
            dt = (t_ms - prev[0]) / 1000.0
            for k, v in values.items():
                rates[k] = (v - prev[1].get(k, 0)) / dt
        elif t_ms > 0:
            rates = {k: v * 1000.0 / t_ms for k, v in values.items()}
        self.last[vm] = (t_ms, values)
        self.rates[vm] = rates

    def render(self):
        out = []
        for vm in sorted(self.last):
            t_ms, values = self.last[vm]
            rates = self.rates.get(vm, {})
            out.append(f"vm{vm} at {t_ms / 1000:.1f} s")
            out.append(f"  {'counter':<28}{'total':>14}{'per second':>14}")
            keys = sorted(values, key=lambda k: (-rates.get(k, 0.0), -values[k], k))
            for k in keys:
                out.append(f"  {k:<28}{values[k]:>14}{rates.get(k, 0.0):>14.0f}")
        return "\n".join(out)


def follow(path, table, interactive, poll=0.2, timeout=None):
    start = time.time()
    while not os.path.exists(path):
        if timeout and time.time() - start > timeout:
            return False
        time.sleep(poll)
    with open(path, "r", errors="replace") as f:
        buf = ""
        while True:
            chunk = f.read()
            if not chunk:
                if timeout and time.time() - start > timeout:
                    return False
                time.sleep(poll)
                continue
            buf += chunk
            *lines, buf = buf.split("\n")
            changed = False
            for line in lines:
                p = parse(line)
                if p:
                    table.update(*p)
                    changed = True
                elif DONE_RE.match(line):
                    if changed:
                        show(table, interactive)
                    print(line.strip())
                    return True
            if changed:
                show(table, interactive)


def show(table, interactive):
    text = table.render()
    if not text:
        return
    if interactive:
        sys.stdout.write("\x1b[H\x1b[2J" + text + "\n")
    else:
        sys.stdout.write(text + "\n\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("log")
    ap.add_argument("--once", action="store_true", help="read the log as it is, print the last table")
    ap.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    args = ap.parse_args()
    table = Table()
    if args.once:
        with open(args.log, errors="replace") as f:
            for line in f:
                p = parse(line)
                if p:
                    table.update(*p)
        if not table.last:
            print("hv_stat: no stat lines in the log (boot hv with hv.stat-ms=N)", file=sys.stderr)
            return 1
        show(table, False)
        return 0
    ok = follow(args.log, table, sys.stdout.isatty(), timeout=args.timeout)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
