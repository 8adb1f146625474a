#!/usr/bin/env python3
"""Reads the serial logs of `tools/hv bench --guest` (one directory per run under RUNDIR:
bare, hv-4k, hv-4k-fa, hv-2m, hv-2m-prefault, hv-1g, zap-1g, zap-4g, zap-16g, apic-on, apic-off),
prints the table and writes the JSON, with a top-level `summary` object of headline figures
(first_touch_ratio_2m, first_touch_ratio_2m_prefault, exits_per_gib_4k_seq,
exits_per_gib_4k_seq_faultaround, ...). The apic runs are tests/guests/guest_lapic.cpp built as guest-bench-apic
("bench: apic name=... mean=... min=..."), once with hv.apicv=on and once with off.

The lines come from the guest (tests/guests/bench_memory.cpp: "bench: WORD key=value ...",
prefixed "hv: vm1: " under hv) and from hv (hv/exit_timing.h: "vmN: vcpuC: exit-cost ...").
All times are TSC ticks read in the same emulator run: under Bochs the TSC follows emulated
instructions, so only ratios between runs mean something; under QEMU+KVM or on hardware the
same figures are real cycles. Standard library only."""
import argparse
import contextlib
import io
import json
import os
import re
import sys

LINE = re.compile(r"^(?:hv: vm\d+: )?bench: (\S+)(.*)$")
APICV = re.compile(r"^hv: apicv: (on|off) \((.*)\)$")
COST = re.compile(r"^hv: (?:cpu\d+: )?vm\d+: vcpu(\d+): exit-cost reason=(\S+)(.*)$")
KV = re.compile(r"(\w+)=(\S+)")
FLOOR = {"4k": 262144, "2m": 512, "1g": 1}  # leaves per GiB: one exit each at best
GIB_MIB = 1024
# Fast-zap runs: (GiB mapped, run name suffix, leaf size); runs "zap-X" (deferred), "zapwait-X".
ZAPS = [(1, "1g", "2m"), (4, "4g", "2m"), (16, "16g", "2m"), (1, "1g-4k", "4k"), (16, "16g-1g", "1g")]


def num(v):
    try:
        return int(v)
    except ValueError:
        return v


def parse(path):
    """The run's lines as {'config': {...}, 'phase': {name: {...}}, 'ept-count': {...},
    'exit-loop': {reason: {...}}, 'zap': {...}, 'cost': {reason: {...}}, 'passed': bool}."""
    run = {"phase": {}, "exit-loop": {}, "cost": {}, "passed": False}
    if not os.path.exists(path):
        return None
    with open(path, errors="replace") as f:
        for raw in f:
            line = raw.rstrip("\r\n")
            m = APICV.match(line)
            if m:
                run["apicv"] = {"path": m.group(1), "why": m.group(2)}
                continue
            m = COST.match(line)
            if m:
                kv = {k: num(v) for k, v in KV.findall(m.group(3))}
                if m.group(1) == "0":  # the benchmark VM has one vCPU; the table reads vCPU 0
                    run["cost"][m.group(2)] = kv
                continue
            m = LINE.match(line)
            if not m:
                continue
            word, rest = m.group(1), m.group(2)
            kv = {k: num(v) for k, v in KV.findall(rest)}
            if word == "phase":
                run["phase"][kv["name"]] = kv
            elif word == "exit-loop":
                run["exit-loop"][kv["reason"]] = kv
            elif word == "apic":
                run.setdefault("apic", {})[kv["name"]] = kv
            elif word == "zap-other":
                run.setdefault("zap-other", []).append(kv)
            elif word in ("config", "ept-count", "zap", "apic-config", "prefault"):
                run[word] = kv
            elif word == "PASS":
                run["passed"] = True
    return run


def ratio(a, b):
    return round(a / b, 2) if a is not None and b else None


def fmt(v, width=0):
    if v is None:
        s = "-"
    elif isinstance(v, float):
        s = f"{v:,.2f}" if v < 1000 else f"{v:,.0f}"
    else:
        s = f"{v:,}"
    return s.rjust(width)


def table(title, head, rows):
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    print(title)
    print("  " + "  ".join(h.ljust(widths[0]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(head)))
    for r in rows:
        print("  " + "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)))
    print()


# --- dirty logging and live migration (issue 14): runs dirty-wp, dirty-ad, dirty-pml, migrate ---
# The dirty runs are the migrate guest with bench=N (tests/guests/guest_migrate.cpp): N passes over
# an 8 MiB slot with logging off, then N with the slot logged and harvested after each pass, in the
# same run; hv.dirty picks the mechanism. The migrate run is the migrate guest moved by hv
# (hv.migrate-ms): hv's "migration: ..." lines give the rounds, pages, final copy and downtime.
DIRTY_RUNS = ("dirty-wp", "dirty-ad", "dirty-pml")
MIGRATE_RUN = "migrate"
DIRTY_LINE = re.compile(r"^(?:hv: vm\d+: )?bench: dirty (.*)$")
MIG_ROUND = re.compile(r"^hv: (?:cpu\d+: )?vm\d+: migration: pre-copy round (\d+): (\d+) pages")
MIG_END = re.compile(r"^hv: (?:cpu\d+: )?vm\d+: migration: pre-copy ended after round (\d+)(: the round limit| of at most)")
MIG_DONE = re.compile(r"^hv: (?:cpu\d+: )?vm\d+: migration: done: (\d+) pre-copy round\(s\), (\d+) pages .* downtime (\d+) TSC "
                      r"ticks \((\d+) us.* final copy (\d+) pages")
MIG_PASS = re.compile(r"^hv: vm\d+: migrate: PASS")


def dirty_migration_section(rundir, summary, wanted):
    """Prints the dirty-log and migration tables (only when `wanted` says their runs were made),
    adds dirty_slowdown_{wp,ad,pml}, harvest_pages_per_s, migrate_downtime_ms, migrate_pages_total
    (and more) to `summary`; returns the JSON section and the names of failed or missing runs."""
    sec = {"dirty": {}, "migrate": None}
    failed = []
    quiet = None
    if not wanted(DIRTY_RUNS + (MIGRATE_RUN,)):
        quiet = contextlib.redirect_stdout(io.StringIO())
        quiet.__enter__()
    rows = []
    best_rate = None
    for name in DIRTY_RUNS:
        path = os.path.join(rundir, name, "serial.log")
        want_mech = name.split("-")[1]
        kv, passed = None, False
        if os.path.exists(path):
            with open(path, errors="replace") as f:
                for raw in f:
                    line = raw.rstrip("\r\n")
                    m = DIRTY_LINE.match(line)
                    if m:
                        kv = {k: num(v) for k, v in KV.findall(m.group(1))}
                    elif re.match(r"^(?:hv: vm\d+: )?bench: PASS", line):
                        passed = True
        key = f"dirty_slowdown_{want_mech}"
        if not kv or not passed:
            summary[key] = None
            if wanted((name,)):
                failed.append(name)
            rows.append([name, "-", "-", "-", "-", "-", "-", "run missing or failed"])
            continue
        if kv["mechanism"] != want_mech:
            # hv fell back (PML not wired in this build, or no EPT A/D): no figure for it.
            summary[key] = None
            sec["dirty"][want_mech] = {"skipped": f"hv used {kv['mechanism']} for hv.dirty={want_mech}", "raw": kv}
            rows.append([name, "-", "-", "-", "-", "-", "-", f"skipped: hv used {kv['mechanism']}"])
            continue
        slow = ratio(kv["on"], kv["off"])
        slow_incl = ratio(kv["on"] + kv["harvest"], kv["off"])
        rate = (kv["harvested"] / (kv["harvest"] / (kv["tsc_khz"] * 1000.0))) if kv["harvest"] and kv["tsc_khz"] else None
        rate = round(rate) if rate is not None else None
        summary[key] = slow
        summary[f"dirty_slowdown_{want_mech}_incl_harvest"] = slow_incl
        summary[f"harvest_pages_per_s_{want_mech}"] = rate
        if rate is not None and (best_rate is None or rate > best_rate[0]):
            best_rate = (rate, want_mech)
        sec["dirty"][want_mech] = dict(kv, slowdown=slow, slowdown_incl_harvest=slow_incl, harvest_pages_per_s=rate)
        rows.append([name, fmt(kv["off"]), fmt(kv["on"]), fmt(slow), fmt(kv["harvest"]), fmt(slow_incl), fmt(rate), "ok"])
    # The headline: the fastest mechanism's harvest rate (which one: in the JSON section).
    summary["harvest_pages_per_s"] = best_rate[0] if best_rate else None
    sec["harvest_pages_per_s_mechanism"] = best_rate[1] if best_rate else None
    table("Dirty logging: the guest's write passes over an 8 MiB slot (2048 pages, every page each pass), logging off and "
          "on (harvest after each pass), same run; TSC ticks; slowdown = on / off; incl. = harvest time added; "
          "harvest rate = pages / harvest time",
          ["run", "off", "on", "slowdown", "harvest", "incl.", "pages/s", "note"], rows)
    path = os.path.join(rundir, MIGRATE_RUN, "serial.log")
    mig = None
    if os.path.exists(path):
        mig = {"rounds_pages": {}, "passed": False}
        with open(path, errors="replace") as f:
            for raw in f:
                line = raw.rstrip("\r\n")
                m = MIG_ROUND.match(line)
                if m:
                    mig["rounds_pages"][int(m.group(1))] = int(m.group(2))
                m = MIG_END.match(line)
                if m:
                    mig["ended_by"] = "round limit" if "limit" in m.group(2) else "small dirty set"
                m = MIG_DONE.match(line)
                if m:
                    mig.update(rounds=int(m.group(1)), pages_total=int(m.group(2)), downtime_ticks=int(m.group(3)),
                               downtime_ms=round(int(m.group(4)) / 1000.0, 3), final_pages=int(m.group(5)))
                if MIG_PASS.match(line):
                    mig["passed"] = True
    if not mig or "pages_total" not in mig or not mig["passed"]:
        if wanted((MIGRATE_RUN,)):
            failed.append(MIGRATE_RUN)
        summary.update(migrate_downtime_ms=None, migrate_pages_total=None, migrate_downtime_ticks=None,
                       migrate_final_pages=None)
    else:
        summary.update(migrate_downtime_ms=mig["downtime_ms"], migrate_pages_total=mig["pages_total"],
                       migrate_downtime_ticks=mig["downtime_ticks"], migrate_final_pages=mig["final_pages"])
        rounds = ", ".join(f"{r}: {p}" for r, p in sorted(mig["rounds_pages"].items()))
        table("Live migration (the migrate guest, 1 vCPU, 48 MiB pool, hv's default dirty log): pages per pre-copy round, "
              "the final copy with the guest paused, downtime from the pause request to the last vCPU restored",
              ["run", "rounds", "pages per round", "ended by", "final copy", "total pages", "MiB", "downtime ticks",
               "downtime ms"],
              [[MIGRATE_RUN, fmt(mig["rounds"]), rounds, mig.get("ended_by", "?"), fmt(mig["final_pages"]),
                fmt(mig["pages_total"]), fmt(mig["pages_total"] * 4096 // (1 << 20)), fmt(mig["downtime_ticks"]),
                fmt(mig["downtime_ms"])]])
    sec["migrate"] = mig
    if quiet:
        quiet.__exit__(None, None, None)
    return sec, failed


# Issue 13's exit-cost goals: hv's exit-to-entry median (hv/exit_timing.h, Bochs ticks), per key:
# (summary key, run, exit-cost reason, goal). CPUID, I/O and VMCALL come from hv-2m's exit loops;
# the EPT violation from hv-4k, where each exit installs one 4 KiB leaf (fault-around off).
EXIT_COST_GOALS = [("exit_cost_cpuid", "hv-2m", "cpuid", 300), ("exit_cost_io", "hv-2m", "io", 300),
                   ("exit_cost_vmcall", "hv-2m", "vmcall", 300), ("exit_cost_ept", "hv-4k", "ept-violation", 1000)]


def exit_cost_summary(runs):
    """The exit_cost_* summary keys (hv's median ticks from exit to the next entry), printed
    beside their goals, with the same run's baselines."""
    keys, rows = {}, []
    for key, run_name, reason, goal in EXIT_COST_GOALS:
        c = ((runs.get(run_name) or {}).get("cost") or {}).get(reason)
        keys[key] = c["median"] if c else None
        met = None if keys[key] is None else ("yes" if keys[key] <= goal else "no")
        # The same exits with the guest-mode loop off (hv-2m-leave: every exit leaves guest mode,
        # then a fast entry) and with the fast path off (hv-2m-nofast: every entry a full pass),
        # same run (hv/fast_entry.h). The EPT violation is never a quiet exit: no such columns.
        leave = full = None
        if run_name == "hv-2m":
            f = ((runs.get("hv-2m-nofast") or {}).get("cost") or {}).get(reason)
            full = f["median"] if f else None
            keys[key + "_full"] = full
            l = ((runs.get("hv-2m-leave") or {}).get("cost") or {}).get(reason)
            leave = l["median"] if l else None
            keys[key + "_leave"] = leave
        rows.append([key, run_name, reason, fmt(keys[key]), fmt(c and c.get("mean")), f"<= {goal:,}", met or "-",
                     fmt(leave), fmt(full), fmt(ratio(keys[key], full))])
    table("Exit cost against issue 13's goals: hv's median TSC ticks from VM exit to the next VM entry (medians are\n"
          "  histogram buckets, within 1/16); leaving = the same exits with hv.fast-entry=leave (hv-2m-leave: the exit\n"
          "  leaves guest mode, then a fast entry); full pass = with hv.fast-entry=0 (hv-2m-nofast: the safe point and\n"
          "  the interrupt evaluation before every entry); ratio = median / full pass",
          ["summary key", "run", "reason", "median", "mean", "goal", "met", "leaving", "full pass", "ratio"], rows)
    return keys


# The xAPIC page's paths (issue 11, hv/apicv.h "virtualize APIC accesses"): guest-bench-apic in
# xAPIC mode (module guest-bench-apic-xapic) with hv's software path (apic-x-off), the hardware
# path with the page emulated (apic-x-emul) and the page virtualized with virtual-interrupt
# delivery (apic-x-vid) or with the TPR shadow and threshold (apic-x-tpr). Returns the section,
# its summary keys (apic_xapic_<measure>_<mode>_over_emul: mean ticks of the mode over the
# emulated page's, same run) and the runs that were asked for but are missing or failed.
APIC_X_RUNS = ("apic-x-off", "apic-x-emul", "apic-x-vid", "apic-x-tpr")


def apic_xapic_section(rundir, only, wanted):
    runs = {n: parse(os.path.join(rundir, n, "serial.log")) for n in APIC_X_RUNS}
    missing = [n for n, r in runs.items() if (not r or not r["passed"]) and (not only or re.search(only, n))]
    quiet = None
    if not wanted(APIC_X_RUNS):
        quiet = contextlib.redirect_stdout(io.StringIO())
        quiet.__enter__()
    sec = {"paths": {n: (r or {}).get("apicv") for n, r in runs.items()}, "measures": {}}
    summary = {}
    rows = []
    for name in ("self-ipi", "timer", "hlt-wake", "ipi-spin", "ipi-hlt"):
        m = {n.replace("apic-x-", ""): (r or {}).get("apic", {}).get(name) for n, r in runs.items()}
        mean = {k: v and v["mean"] for k, v in m.items()}
        sec["measures"][name] = m
        for mode in ("off", "vid", "tpr"):
            summary[f"apic_xapic_{name.replace('-', '_')}_{mode}_over_emul"] = ratio(mean[mode], mean["emul"])
        rows.append([name] + [fmt(mean[k]) for k in ("off", "emul", "vid", "tpr")] +
                    [fmt(ratio(mean[k], mean["emul"])) for k in ("off", "vid", "tpr")])
    table("Interrupts in the guest in xAPIC mode (guest-bench-apic-xapic, 2 vCPUs): hv's software path (off), "
          "the hardware path with the xAPIC page emulated (emul, hv.apicv-access=off) and virtualized through the "
          "APIC-access page (vid / tpr, hv.apicv-access=vid|tpr); mean TSC ticks; ratio = mode / emul",
          ["measure", "off", "emul", "vid", "tpr", "off/emul", "vid/emul", "tpr/emul"], rows)
    if quiet:
        quiet.__exit__(None, None, None)
    return sec, summary, missing


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rundir")
    ap.add_argument("--out", required=True)
    ap.add_argument("--emulator", default="bochs")
    ap.add_argument("--only", default=None, help="regex of the runs that were made (HV_BENCH_GUEST_ONLY)")
    a = ap.parse_args()
    runs = {n: parse(os.path.join(a.rundir, n, "serial.log")) for n in
            ("bare", "hv-4k", "hv-2m", "hv-1g", "hv-2m-trace", "hv-2m-nofast", "hv-2m-leave", "hv-2m-nofa", "hv-4k-fa", "hv-2m-prefault") + tuple(
                 p + z for _, z, _ in ZAPS for p in ("zap-", "zapwait-")) + ("apic-off", "apic-on")}
    missing = [n for n, r in runs.items() if (not r or not r["passed"]) and (not a.only or re.search(a.only, n))]
    out = {"emulator": a.emulator, "units": "TSC ticks (Bochs: emulated instructions; KVM/hardware: cycles)",
           "runs_failed": missing, "workload": {}, "ept_violations_per_gib": {}, "exit_cost": {}, "fast_zap": {}, "apic": {}}

    # With --only, the sections whose runs were not made are computed but not printed.
    wanted = lambda names: not a.only or any(re.search(a.only, n) for n in names)
    quiet = contextlib.redirect_stdout(io.StringIO())
    if not wanted(("bare", "hv-4k", "hv-2m", "hv-1g") + tuple(p + z for _, z, _ in ZAPS for p in ("zap-", "zapwait-"))):
        quiet.__enter__()
    else:
        quiet = None

    # --- workload: bare vs virtualized ---
    bare = runs["bare"]
    phases = ["first-touch-seq", "first-touch-random", "retouch"]

    def ticks(run, ph):
        return run["phase"].get(ph, {}).get("ticks") if run else None

    def first(run):
        s, r = ticks(run, phases[0]), ticks(run, phases[1])
        return s + r if s is not None and r is not None else None

    mib = (bare or {}).get("config", {}).get("mib")
    wl = {"mib_each": mib, "bare": {p: ticks(bare, p) for p in phases}}
    wl["bare"]["first-touch"] = first(bare)
    rows = []
    for label, get in (("first touch, sequential", lambda r: ticks(r, phases[0])),
                       ("first touch, random", lambda r: ticks(r, phases[1])),
                       ("first touch, both", first),
                       ("re-touch", lambda r: ticks(r, phases[2]))):
        b = get(bare)
        row = [label, fmt(b)]
        for bk in ("4k", "2m", "1g"):
            v = get(runs[f"hv-{bk}"])
            row += [fmt(v), fmt(ratio(v, b))]
        rows.append(row)
    for bk in ("4k", "2m", "1g"):
        r = runs[f"hv-{bk}"]
        d = {p: ticks(r, p) for p in phases}
        d["first-touch"] = first(r)
        d["ept_exits"] = {p: r["phase"].get(p, {}).get("ept_exits") for p in phases} if r else None
        d["ratio_first_touch"] = ratio(d["first-touch"], wl["bare"]["first-touch"])
        d["ratio_first_touch_seq"] = ratio(d[phases[0]], wl["bare"][phases[0]])
        d["ratio_first_touch_random"] = ratio(d[phases[1]], wl["bare"][phases[1]])
        d["ratio_retouch"] = ratio(d["retouch"], wl["bare"]["retouch"])
        wl[f"hv-{bk}"] = d
    out["workload"] = wl
    print(f"Guest benchmarks on {a.emulator}, 1 vCPU (fast zap: 2); TSC ticks measured inside the guest "
          f"(Bochs: the TSC follows emulated instructions, so compare the ratios)\n")
    table(f"Memory workload: first touch of {mib} MiB in order and {mib} MiB in a seeded random order, "
          f"then re-touch of both (one store per 4 KiB page); ratio = under hv / bare",
          ["phase", "bare", "hv 4K", "ratio", "hv 2M", "ratio", "hv 1G", "ratio"], rows)

    # --- EPT violations per GiB of first touch ---
    rows = []
    for bk in ("4k", "2m", "1g"):
        r = runs[f"hv-{bk}"]
        e = (r or {}).get("ept-count")
        if not e:
            rows.append([bk, "-", "-", "-", fmt(FLOOR[bk]), "-", "run missing"])
            continue
        per = e["exits"] * GIB_MIB / e["mib"]
        extrap = e["mib"] < GIB_MIB
        out["ept_violations_per_gib"][bk] = {
            "touched_mib": e["mib"], "exits": e["exits"], "per_gib": per, "extrapolated": extrap,
            "floor": FLOOR[bk], "leaves": {"4k": e["leaves4k"], "2m": e["leaves2m"], "1g": e["leaves1g"]},
            "ticks": e["ticks"]}
        note = f"extrapolated x{GIB_MIB // e['mib']} from {e['mib']} MiB" if extrap else "measured over 1 GiB"
        rows.append([bk, fmt(e["mib"]), fmt(e["exits"]), fmt(per if extrap else e["exits"]), fmt(FLOOR[bk]),
                     f"{e['leaves4k']}/{e['leaves2m']}/{e['leaves1g']}", note])
    table("EPT-violation exits per GiB of first touch (a fresh 1 GiB-aligned alias slot of the pool)",
          ["backing", "MiB touched", "exits", "per GiB", "floor", "leaves 4K/2M/1G", "note"], rows)

    # --- cost per exit ---
    main_run = runs["hv-2m"] or {"cost": {}, "exit-loop": {}}
    rows = []
    for reason in ("cpuid", "hlt", "vmcall", "io"):
        c = main_run["cost"].get(reason)
        loop = main_run["exit-loop"].get(reason)
        trip = round(loop["ticks"] / loop["count"]) if loop and loop["count"] else None
        if c:
            out["exit_cost"][reason] = {"count": c["count"], "median": c["median"], "p99": c["p99"], "max": c["max"],
                                        "mean": c["mean"], "guest_round_trip_mean": trip, "run": "hv-2m"}
        rows.append([reason, fmt(c and c["count"]), fmt(c and c["median"]), fmt(c and c["p99"]), fmt(c and c["max"]),
                     fmt(trip)])
    for bk in ("4k", "2m", "1g"):
        r = runs[f"hv-{bk}"]
        c = r and r["cost"].get("ept-violation")
        if c:
            out["exit_cost"][f"ept-violation-{bk}"] = {"count": c["count"], "median": c["median"], "p99": c["p99"],
                                                      "max": c["max"], "mean": c["mean"], "run": f"hv-{bk}"}
        rows.append([f"ept-violation ({bk} backing)", fmt(c and c["count"]), fmt(c and c["median"]),
                     fmt(c and c["p99"]), fmt(c and c["max"]), "-"])
    table("Hypervisor cost per exit: TSC ticks from VM exit to the next VM entry, recorded by hv per reason "
          "(log-linear histogram: median/p99 within 1/16);\n"
          "  guest round trip = the guest's loop time / iterations; hlt: a no-op exit in hv (no virtual interrupts yet), "
          "the guest continues at once",
          ["reason", "exits", "median", "p99", "max", "guest round trip"], rows)

    # --- the trace's cost: hv-2m again with hv.trace=all (recorded, not printed) ---
    traced = runs["hv-2m-trace"] or {"cost": {}, "exit-loop": {}}
    out["trace_cost"] = {}
    rows = []
    for reason in ("cpuid", "vmcall", "io", "ept-violation"):
        off, on = main_run["cost"].get(reason), traced["cost"].get(reason)
        r = ratio(on and on["median"], off and off["median"])
        out["trace_cost"][reason] = {"median_off": off and off["median"], "median_on": on and on["median"],
                                     "mean_off": off and off["mean"], "mean_on": on and on["mean"], "ratio_median": r}
        rows.append([reason, fmt(off and off["median"]), fmt(on and on["median"]), fmt(r),
                     fmt(off and off["mean"]), fmt(on and on["mean"])])
    table("Trace cost: exit-to-entry ticks with hv.trace off (hv-2m) and with every category on (hv-2m-trace; "
          "records kept in the rings, not printed)",
          ["reason", "median off", "median on", "ratio", "mean off", "mean on"], rows)

    # --- fast zap ---
    def other_max(run):
        o = (run or {}).get("zap-other")
        return max(x["max_wait_ticks"] for x in o) if o else None

    rows = []
    for gib, suffix, leaf in ZAPS:
        r, w = runs[f"zap-{suffix}"], runs[f"zapwait-{suffix}"]
        z, zw = (r or {}).get("zap"), (w or {}).get("zap")
        cpuid = (r or {}).get("cost", {}).get("cpuid")
        if not z:
            rows.append([f"{gib} GiB, {leaf}"] + ["-"] * 9 + ["run missing"])
            continue
        out["fast_zap"][f"{gib}g-{leaf}"] = {
            "mapped_gib": gib, "leaf": leaf, "leaves": {"4k": z["leaves4k"], "2m": z["leaves2m"], "1g": z["leaves1g"]},
            "table_pages": z["table_pages"],
            "deferred": {"invalidate_call": z["call_ticks"], "longest_wait_guest": z["max_wait_ticks"],
                         "longest_exit_to_entry_hv_cpuid": cpuid and cpuid["max"],
                         "until_torn_down": z["total_ticks"], "exits_until_torn_down": z["exits"],
                         "idle_round_trip_max": z["baseline_max_ticks"], "completed": bool(z["done"])},
            "synchronous": zw and {"wait": zw["call_ticks"], "completed": bool(zw["done"]),
                                   "longest_wait_other_vcpus": other_max(w)}}
        out["fast_zap"][f"{gib}g-{leaf}"]["deferred"]["longest_wait_other_vcpus"] = other_max(r)
        rows.append([f"{gib} GiB, {leaf}", f"{z['leaves4k']}/{z['leaves2m']}/{z['leaves1g']}", fmt(z["table_pages"]),
                     fmt(z["call_ticks"]), fmt(z["max_wait_ticks"]), fmt(cpuid and cpuid["max"]),
                     fmt(z["exits"]), fmt(z["total_ticks"]), fmt(other_max(r)), fmt(zw and zw["call_ticks"]),
                     fmt(other_max(w))])
    table("Fast zap: GiB mapped by hv before the guest starts (1 GiB alias slots of the pool at 4 GiB and up, "
          "with 2 MiB leaves; also 4 KiB and 1 GiB), then invalidate all roots on vCPU 0 of 2.\n"
          "  deferred: the call returns at once, each later entry first runs a bounded teardown step "
          "(budget 64 SPTE units, about one table at most);\n"
          "  longest wait = the longest exit round trip vCPU 0 saw until no invalid root was left (idle round trip: "
          f"{fmt(((runs['zap-1g'] or {}).get('zap') or {}).get('baseline_max_ticks'))}); "
          "hv max = the same measured by hv;\n"
          "  other vCPU wait = the longest round trip vCPU 1 saw meanwhile (it did not ask for the zap); "
          "sync wait = the zap call when it waits for the whole teardown",
          ["mapped, leaves", "leaves 4K/2M/1G", "tables", "zap call", "longest wait", "hv max (cpuid)", "exits",
           "until torn down", "other vCPU wait", "sync wait", "other vCPU wait"], rows)

    if quiet:
        quiet.__exit__(None, None, None)

    # --- interrupts: the LAPIC's hardware path against the software path ---
    on, off = runs["apic-on"] or {}, runs["apic-off"] or {}
    cfg = on.get("apic-config") or off.get("apic-config") or {}
    ap = {"x2apic": cfg.get("x2apic"), "vcpus": cfg.get("vcpus"), "n": cfg.get("n"),
          "path_on": on.get("apicv"), "path_off": off.get("apicv"), "measures": {}}
    rows = []
    for name, what in (("self-ipi", "self-IPI to handler's EOI"), ("timer", "timer: deadline to handler (spinning)"),
                       ("hlt-wake", "HLT wake-up: deadline to handler"),
                       ("ipi-spin", "IPI round trip, vCPU 1 spinning"),
                       ("ipi-hlt", "IPI round trip, vCPU 1 in HLT")):
        a_off = off.get("apic", {}).get(name)
        a_on = on.get("apic", {}).get(name)
        m = {"off": a_off, "on": a_on,
             "ratio_on_off_mean": ratio(a_on and a_on["mean"], a_off and a_off["mean"]),
             "ratio_on_off_min": ratio(a_on and a_on["min"], a_off and a_off["min"])}
        ap["measures"][name] = m
        rows.append([what, fmt(a_off and a_off["mean"]), fmt(a_off and a_off["min"]), fmt(a_on and a_on["mean"]),
                     fmt(a_on and a_on["min"]), fmt(m["ratio_on_off_mean"]), fmt(m["ratio_on_off_min"])])
    out["apic"] = ap
    path_on = (ap["path_on"] or {}).get("path", "?")
    table(f"Interrupts in the guest (guest-bench-apic, {'x2APIC' if cfg.get('x2apic') else 'xAPIC'} mode, "
          f"{cfg.get('vcpus', '?')} vCPUs, {cfg.get('n', '?')} each): hv.apicv=off (hv's software LAPIC path) "
          f"against hv.apicv=on (VMX APIC virtualization; this run's path: {path_on}); "
          "TSC ticks, mean and min; ratio = on / off\n"
          f"  hardware path: {(ap['path_on'] or {}).get('why', 'run missing')}",
          ["measure", "off mean", "off min", "on mean", "on min", "ratio mean", "ratio min"], rows)

    # --- pre-fault and fault-around (issue 13): against bare and hv-2m / hv-4k of the same run ---
    quiet2 = None
    if not wanted(("hv-4k-fa", "hv-2m-prefault", "hv-2m-nofa")):
        quiet2 = contextlib.redirect_stdout(io.StringIO())
        quiet2.__enter__()
    pre = runs["hv-2m-prefault"]
    pf_ticks = ticks(pre, "prefault")
    pf_first = first(pre)
    bare_first = wl["bare"]["first-touch"]
    summary = {
        "first_touch_ratio_2m": ratio(first(runs["hv-2m"]), bare_first),
        "first_touch_ratio_2m_prefault": ratio(pf_first, bare_first),
        "first_touch_ratio_2m_prefault_incl": ratio(pf_first + pf_ticks if pf_first is not None and pf_ticks is not None
                                                    else None, bare_first),
    }
    rows = [["first touch, both (2M)", fmt(bare_first), fmt(first(runs["hv-2m"])),
             fmt(summary["first_touch_ratio_2m"]), fmt(pf_first), fmt(summary["first_touch_ratio_2m_prefault"]),
             fmt(pf_ticks), fmt(summary["first_touch_ratio_2m_prefault_incl"])]]
    out["prefault"] = {"run": "hv-2m-prefault", "prefault_ticks": pf_ticks,
                       "prefault_calls": ((pre or {}).get("prefault") or {}).get("calls"),
                       "first_touch": pf_first, "bare_first_touch": bare_first,
                       "ept_exits_first_touch": [pre["phase"].get(ph, {}).get("ept_exits") for ph in phases[:2]] if pre else None}
    table("Pre-fault: the workload's first touch (2 MiB backing) after HV_CALL_PREFAULT of both regions; ratio = / bare; "
          "incl. = the pre-fault calls' time added",
          ["phase", "bare", "hv 2M", "ratio", "prefaulted", "ratio", "prefault calls", "ratio incl."], rows)
    # 2 MiB leaves: hv-2m has the default fault-around (neighbouring 2 MiB leaves too),
    # hv-2m-nofa the same with hv.fault-around=0: one exit per 2 MiB touched.
    nofa = runs["hv-2m-nofa"]
    summary["first_touch_ratio_2m_nofaultaround"] = ratio(first(nofa), bare_first)
    rows = []
    for key, run_name in (("exits_per_gib_2m", "hv-2m"), ("exits_per_gib_2m_nofaultaround", "hv-2m-nofa")):
        e = (runs[run_name] or {}).get("ept-count")
        summary[key] = e["exits"] * GIB_MIB / e["mib"] if e else None
        rows.append([run_name, fmt(summary[key]), fmt(FLOOR["2m"]), fmt(ratio(summary[key], FLOOR["2m"])),
                     fmt(first(runs[run_name])), fmt(ratio(first(runs[run_name]), bare_first))])
    table("Fault-around with 2 MiB leaves: EPT-violation exits per GiB of first touch (the ept-count phase) and the "
          "workload's first touch (both orders), with the default (hv-2m) and without (hv-2m-nofa, hv.fault-around=0)",
          ["run", "per GiB", "floor", "/ floor", "first touch", "/ bare"], rows)
    rows = []
    for key, run_name in (("exits_per_gib_4k_seq", "hv-4k"), ("exits_per_gib_4k_seq_faultaround", "hv-4k-fa")):
        e = (runs[run_name] or {}).get("ept-count")
        summary[key] = e["exits"] * GIB_MIB / e["mib"] if e else None
        r = runs[run_name]
        rnd = (r or {}).get("phase", {}).get(phases[1])
        rkey = key.replace("_seq", "_random")
        summary[rkey] = rnd["ept_exits"] * GIB_MIB / rnd["mib"] if rnd and rnd.get("mib") else None
        rows.append([run_name, fmt(summary[key]), fmt(summary[rkey]), fmt(FLOOR["4k"]),
                     fmt(ratio(summary[key], FLOOR["4k"])), fmt(ratio(summary[rkey], FLOOR["4k"])),
                     fmt(ratio(ticks(r, phases[0]), wl["bare"][phases[0]])),
                     fmt(ratio(ticks(r, phases[1]), wl["bare"][phases[1]]))])
    out["fault_around"] = {"runs": {"off": "hv-4k", "on": "hv-4k-fa"}, "floor_per_gib": FLOOR["4k"]}
    table("Fault-around: EPT-violation exits per GiB of 4 KiB first touch (sequential: the ept-count phase; random: "
          "the workload's random phase), without (hv-4k) and with fault-around (hv-4k-fa); first-touch time / bare",
          ["run", "seq per GiB", "random per GiB", "floor", "seq / floor", "random / floor", "seq time ratio",
           "random time ratio"], rows)
    if quiet2:
        quiet2.__exit__(None, None, None)
    out["dirty_migration"], dm_failed = dirty_migration_section(a.rundir, summary, wanted)
    missing += dm_failed
    out["apic_xapic"], xsum, xmissing = apic_xapic_section(a.rundir, a.only, wanted)
    summary.update(xsum)
    missing += xmissing
    out["runs_failed"] = missing
    summary.update(exit_cost_summary(runs))
    out["summary"] = summary
    print("summary: " + ", ".join(f"{k}={fmt(v)}" for k, v in summary.items()))
    out["raw"] = runs  # every line parsed, per run
    # The Linux guest's figures (tools/bench_linux.py, its own runs) stay in the file.
    try:
        with open(a.out) as f:
            old = json.load(f)
        if "linux" in old:
            out["linux"] = old["linux"]
            # Merged: this run's keys and the Linux ones (replacing would drop this run's).
            out["summary"] = {**summary, **{k: v for k, v in old.get("summary", {}).items() if k.startswith("linux_")}}
    except (OSError, ValueError):
        pass
    with open(a.out, "w") as f:
        json.dump(out, f, indent=2)
    if missing:
        print(f"missing or failed runs: {', '.join(missing)} (logs under {a.rundir})")
    print(f"written: {a.out}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
