#!/usr/bin/env python3
"""The Linux guest's part of `tools/hv bench --guest` (tools/hv bench_linux): reads the serial
logs of RUNDIR/linux-bare, RUNDIR/linux-hv and RUNDIR/linux-hv-boot, prints a table, and adds the figures to the JSON
file given with --out (build/bench-guest.json) as "linux", plus headline entries in its top-level
"summary" (created when missing; other keys of the file are kept).

Both runs boot the same kernel, initramfs and command line in the same emulator configuration
(Bochs, 1 CPU, 256 MiB for the guest), /init prints "hv-init: boot tsc=T uptime=U" when the
shell is about to start (the shell marker), then the workload (linux/memwork.c) runs and prints
"memwork: PASS (..., S s)". Figures:
  boot        the kernel's uptime at the marker, in seconds and in TSC ticks (uptime x the TSC
              rate the kernel was given, tsc_early_khz): the kernel's own boot, bare against
              under hv; the goal is hv / bare <= 1.15. Also the TSC at the marker itself (ticks
              since the machine's reset: firmware, GRUB, hv's own start and, bare, the kernel's
              decompressor, which the PVH entry under hv skips).
  exits       hv's stop report of RUNDIR/linux-hv-boot, a run with the command `true` (the boot
              and /init's power-off): exits by reason, EPT violations for memory per MiB mapped,
              MMIO EPT violations (emulated), all EPT violations per MiB of guest RAM.
  memwork     the workload's own elapsed time (the guest's clock), hv / bare.
Under Bochs the TSC follows emulated instructions (ips of tests/boot/bochsrc.in): only ratios
between runs mean something. Standard library only."""
import argparse
import json
import os
import re
import sys
import time

from bench_guest import table  # the same table layout as the other guest benchmarks

MARK = re.compile(r"^(?:hv: vm1: )?hv-init: boot tsc=(\d+) uptime=([0-9.]+)")
MEMWORK = re.compile(r"^(?:hv: vm1: )?memwork: (PASS|FAIL)(.*?)(?:, ([0-9.]+) s\))?$")
STATUS = re.compile(r"^(?:hv: vm1: )?hv-init: exit status (\d+)")
STAT = re.compile(r"^hv: vm1: stat: t=(\d+)((?: [A-Za-z0-9/_.-]+=\d+)*)\s*$")
TOTAL = re.compile(r"^hv: vm1: (\d+) exits \((.*)\)$")
EPT_LINE = re.compile(r"^hv: vm1: ept violations (\d+), leaves 4K (\d+) 2M (\d+) 1G (\d+)")
FAULTS = re.compile(r"^hv: vm1: faults fixed (\d+), spurious (\d+), retry (\d+), unbacked (\d+)")
COST = re.compile(r"^hv: (?:cpu\d+: )?vm1: vcpu0: exit-cost reason=(\S+) (.*)$")
KHZ = re.compile(r"tsc_early_khz=(\d+)")
KV = re.compile(r"([\w/-]+)=(\d+)")
GUEST_MIB = 256


def parse(rundir, name):
    path = os.path.join(rundir, name, "serial.log")
    if not os.path.exists(path):
        return None
    run = {"passed": False, "status": None, "stat_before_marker": None, "stat_lines": 0, "cost": {}}
    last_stat = None
    with open(path, errors="replace") as f:
        for raw in f:
            line = raw.rstrip("\r\n")
            m = STAT.match(line)
            if m:
                last_stat = {"t_ms": int(m.group(1)), **{k: int(v) for k, v in KV.findall(m.group(2))}}
                run["stat_lines"] += 1
                continue
            m = MARK.match(line)
            if m:
                run["marker_tsc"], run["uptime_s"] = int(m.group(1)), float(m.group(2))
                run["stat_before_marker"] = last_stat
                continue
            m = MEMWORK.match(line)
            if m:
                run["memwork"] = {"result": m.group(1), "line": line.split("memwork: ", 1)[1],
                                  "seconds": float(m.group(3)) if m.group(3) else None}
                continue
            m = STATUS.match(line)
            if m:
                run["status"] = int(m.group(1))
                continue
            m = TOTAL.match(line)
            if m:
                by = {}
                for part in m.group(2).split(", "):
                    reason, _, n = part.rpartition(" ")
                    if n.isdigit():
                        by[reason] = int(n)
                run["exits_total"] = {"all": int(m.group(1)), "by_reason": by}
                continue
            m = EPT_LINE.match(line)
            if m:
                run["ept_total"] = {"violations": int(m.group(1)), "leaves-4k": int(m.group(2)),
                                    "leaves-2m": int(m.group(3)), "leaves-1g": int(m.group(4))}
                continue
            m = FAULTS.match(line)
            if m:
                run["faults_total"] = {"fixed": int(m.group(1)), "spurious": int(m.group(2)), "retry": int(m.group(3)),
                                       "unbacked": int(m.group(4))}
                continue
            m = COST.match(line)
            if m:
                run["cost"][m.group(1)] = {k: int(v) for k, v in KV.findall(m.group(2))}
    cmdline = os.path.join(rundir, name, "kernel-cmdline")
    if os.path.exists(cmdline):
        with open(cmdline) as f:
            k = KHZ.search(f.read())
            run["tsc_khz"] = int(k.group(1)) if k else None
    run["passed"] = run["status"] == 0 and (run.get("memwork") or {}).get("result") == "PASS"
    return run


def ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.3f}" if v < 100 else f"{v:,.0f}"
    return f"{v:,}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rundir")
    ap.add_argument("--out", required=True)
    ap.add_argument("--workload", default="")
    a = ap.parse_args()
    bare, hv, hv_boot = parse(a.rundir, "linux-bare"), parse(a.rundir, "linux-hv"), parse(a.rundir, "linux-hv-boot")
    missing = [n for n, r in (("linux-bare", bare), ("linux-hv", hv)) if not r or not r["passed"]]
    if not hv_boot or hv_boot["status"] != 0 or not hv_boot.get("exits_total"):
        missing.append("linux-hv-boot")

    def ticks(run):
        if not run or run.get("uptime_s") is None or not run.get("tsc_khz"):
            return None
        return round(run["uptime_s"] * run["tsc_khz"] * 1000)

    boot = {
        "bare": {"uptime_s": (bare or {}).get("uptime_s"), "uptime_ticks": ticks(bare),
                 "marker_tsc_since_reset": (bare or {}).get("marker_tsc")},
        "hv": {"uptime_s": (hv or {}).get("uptime_s"), "uptime_ticks": ticks(hv),
               "marker_tsc_since_reset": (hv or {}).get("marker_tsc")},
    }
    boot["ratio_hv_bare"] = ratio(ticks(hv), ticks(bare))
    boot["goal"] = 1.15
    boot["ratio_marker_tsc_since_reset"] = ratio(boot["hv"]["marker_tsc_since_reset"],
                                                 boot["bare"]["marker_tsc_since_reset"])

    # The boot's exits: hv's totals of linux-hv-boot (command `true`: the boot and /init's
    # power-off), in hv.stat-ms's key spelling ("i/o instruction" -> "i/o-instruction").
    hb = hv_boot or {}
    tot, ept_tot, flt = hb.get("exits_total") or {}, hb.get("ept_total") or {}, hb.get("faults_total") or {}
    reasons = {k.replace(" ", "-"): v for k, v in (tot.get("by_reason") or {}).items()}
    mapped_mib = (ept_tot["leaves-4k"] / 256 + ept_tot["leaves-2m"] * 2 + ept_tot["leaves-1g"] * 1024) if ept_tot else None
    ept = ept_tot.get("violations")
    # EPT violations are of two kinds: memory hv maps (the figure per MiB mapped) and MMIO,
    # emulated every time (faults "unbacked": the xAPIC page, the IOAPIC).
    mmio = flt.get("unbacked")
    mem = ept - mmio if ept is not None and mmio is not None else None
    exits = {"run": "linux-hv-boot (command `true`: the boot and the power-off)", "all": tot.get("all"),
             "by_reason": reasons, "ept_violations": ept, "ept_violations_memory": mem, "ept_violations_mmio": mmio,
             "mapped_mib": mapped_mib,
             "ept_violations_per_mib_mapped": round(mem / mapped_mib, 3) if mem is not None and mapped_mib else None,
             "ept_violations_all_per_mib_ram": round(ept / GUEST_MIB, 2) if ept is not None else None,
             "boot_uptime_s": hb.get("uptime_s"), "cost": hb.get("cost"), "memwork_run_totals": (hv or {}).get("exits_total")}

    mw_b, mw_h = (bare or {}).get("memwork") or {}, (hv or {}).get("memwork") or {}
    memwork = {"command": a.workload, "bare_s": mw_b.get("seconds"), "hv_s": mw_h.get("seconds"),
               "ratio_hv_bare": ratio(mw_h.get("seconds"), mw_b.get("seconds")),
               "bare": mw_b.get("line"), "hv": mw_h.get("line")}

    print("Linux guest (Debian cloud kernel, busybox; Bochs, 1 CPU, 256 MiB): bare against under hv (PVH entry)\n")
    table("Boot to the shell marker (/init's 'hv-init: boot tsc=... uptime=...'): the kernel's uptime, "
          "in TSC ticks = uptime x tsc_early_khz; goal hv/bare <= 1.15",
          ["measure", "bare", "hv", "hv / bare"],
          [["kernel uptime at the marker (s)", fmt(boot["bare"]["uptime_s"]), fmt(boot["hv"]["uptime_s"]),
            fmt(boot["ratio_hv_bare"])],
           ["  in TSC ticks", fmt(boot["bare"]["uptime_ticks"]), fmt(boot["hv"]["uptime_ticks"]),
            fmt(boot["ratio_hv_bare"])],
           ["TSC at the marker since reset", fmt(boot["bare"]["marker_tsc_since_reset"]),
            fmt(boot["hv"]["marker_tsc_since_reset"]), fmt(boot["ratio_marker_tsc_since_reset"])]])
    rows = [[r, fmt(n)] for r, n in sorted(reasons.items(), key=lambda kv: -kv[1])]
    rows.append(["all", fmt(tot.get("all"))])
    rows.append(["EPT violations for memory, per MiB mapped",
                 f"{fmt(exits['ept_violations_per_mib_mapped'])} ({fmt(mem)} over {fmt(mapped_mib)} MiB)"])
    rows.append(["EPT violations for MMIO (emulated)", fmt(mmio)])
    rows.append(["all EPT violations per MiB of RAM",
                 f"{fmt(exits['ept_violations_all_per_mib_ram'])} ({fmt(ept)} / {GUEST_MIB} MiB)"])
    table(f"Exits during the boot (run linux-hv-boot: the command `true`, so hv's totals are the boot's and the "
          f"power-off's; its marker at {fmt(hb.get('uptime_s'))} s of uptime)", ["reason", "exits"], rows)
    table(f"Memory workload inside Linux ({a.workload}): its own elapsed time",
          ["measure", "bare", "hv", "hv / bare"],
          [["memwork (s)", fmt(memwork["bare_s"]), fmt(memwork["hv_s"]), fmt(memwork["ratio_hv_bare"])]])

    doc = {}
    if os.path.exists(a.out):
        try:
            with open(a.out) as f:
                doc = json.load(f)
        except (OSError, ValueError):
            doc = {}
    doc["linux"] = {"measured": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                    "emulator": "bochs", "config": "1 CPU, 256 MiB guest RAM, PVH entry under hv",
                    "runs_failed": missing, "boot": boot, "boot_exits": exits, "memwork": memwork,
                    "raw": {"linux-bare": bare, "linux-hv": hv, "linux-hv-boot": hv_boot}}
    summary = doc.setdefault("summary", {})
    summary["linux_boot_ratio_hv_bare"] = {"value": boot["ratio_hv_bare"], "goal": "<= 1.15",
                                           "met": boot["ratio_hv_bare"] is not None and boot["ratio_hv_bare"] <= 1.15}
    summary["linux_boot_exits"] = tot.get("all")
    summary["linux_boot_ept_violations_per_mib_mapped"] = exits["ept_violations_per_mib_mapped"]
    summary["linux_memwork_ratio_hv_bare"] = memwork["ratio_hv_bare"]
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=2)
    if missing:
        print(f"missing or failed Linux runs: {', '.join(missing)} (logs under {a.rundir})")
    print(f"written: {a.out} (\"linux\", \"summary\")")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
