#!/usr/bin/env python3
"""hv's event trace as a timeline (tools/hv trace).

hv booted with hv.trace=CATS prints its per-CPU trace rings after the run (hv/trace.h):
    hv: trace: begin tsc_khz=50000 cpus=2 mask=0x3f
    hv: trace: C <cpu> <type>.<vm>.<vcpu>.<dtsc>.<a>.<b> ...   (hex; dtsc: delta from the CPU's last)
    hv: trace: cpu0: 1234 records, 0 dropped
    hv: trace: end
This script turns them into
  - a Chrome/Perfetto trace (JSON; open it in ui.perfetto.dev or chrome://tracing): a process per
    VM with a track per vCPU ("guest" and "exit: REASON" slices, EPT faults inside the exits,
    injected interrupts, wake-up IPIs and hypercalls as instants) and a "host CPUs" process with
    a track per CPU (flush requests as slices with flow arrows to each CPU's flush, deferred
    MMU work passes and the teardown steps inside them, reclaim passes, fast zaps with their
    wait, memslot changes and the range zaps inside them);
  - a PNG timeline of the same data (matplotlib) for a quick look;
  - with --check, the trace's own consistency: the JSON is well formed, every exit is
    followed by an entry (or the vCPU's stop) on the same vCPU, a vCPU's slices never overlap,
    a host CPU's slices (flush requests, deferred passes, teardown steps, reclaims, fast zaps,
    memslot changes, range zaps) nest and never partly overlap, every flush flow connects a
    request to a later flush on another CPU, and every request that sent IPIs has a flow to as
    many CPUs as it interrupted (unless a ring filled up). Prints "hv_trace: ... checks: ok" or
    what failed, exit status 1 then.
"""
import argparse
import json
import os
import re
import sys

(ENTRY, EXIT, VCPU_STOP, FAULT, INJECT, WAKE_IPI, FLUSH_REQ, FLUSH_SERVE, DEFERRED, FAST_ZAP, HCALL, SLOT_UPDATE,
 ZAP_RANGE, TEARDOWN_STEP, RECLAIM) = range(1, 16)
ALL_VMS = 0xFFFFFFFF  # a flush request for every VM's tag (hv's boot-time check)
SLOT_KINDS = ["create", "remove", "move", "flags"]

EXIT_REASONS = {
    0: "exception or NMI", 1: "external interrupt", 2: "triple fault", 3: "INIT", 4: "SIPI", 7: "interrupt window",
    8: "NMI window", 9: "task switch", 10: "CPUID", 12: "HLT", 13: "INVD", 14: "INVLPG", 15: "RDPMC", 16: "RDTSC",
    18: "VMCALL", 28: "CR access", 29: "MOV DR", 30: "I/O", 31: "RDMSR", 32: "WRMSR", 33: "entry failure (guest state)",
    37: "monitor trap flag", 40: "PAUSE", 44: "APIC access", 45: "virtualized EOI", 48: "EPT violation",
    49: "EPT misconfiguration", 52: "preemption timer", 54: "WBINVD", 55: "XSETBV", 56: "APIC write", 58: "INVPCID",
}
FAULT_OUTCOMES = ["fixed", "spurious", "retry", "unbacked", "out of memory", "write-protected", "bad gfn"]
HOST_PID = 1000  # the "host CPUs" process

REC_RE = re.compile(r"^hv: trace: C ([0-9a-f]+)((?: [0-9a-f]+\.[0-9a-f]+\.[0-9a-f]+\.[0-9a-f]+\.[0-9a-f]+\.[0-9a-f]+)+)\s*$")
BEGIN_RE = re.compile(r"^hv: trace: begin tsc_khz=(\d+) cpus=(\d+)")
CPU_RE = re.compile(r"^hv: trace: cpu(\d+): (\d+) records, (\d+) dropped")


def read_log(path):
    """(tsc_khz, records, per-cpu (records, dropped)); records as dicts in log order."""
    khz, recs, cpus, last = None, [], {}, {}
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\r\n")
            m = REC_RE.match(line)
            if m:
                cpu = int(m.group(1), 16)
                for tok in m.group(2).split():
                    typ, vm, vcpu, dtsc, a, b = (int(x, 16) for x in tok.split("."))
                    # A record stamped with its start (a fault, a flush request) is written when it
                    # ends, after records of what happened meanwhile: deltas can be negative.
                    if dtsc >= 1 << 63:
                        dtsc -= 1 << 64
                    last[cpu] = (last.get(cpu, 0) + dtsc) % (1 << 64)
                    recs.append({"cpu": cpu, "type": typ, "vm": vm, "vcpu": vcpu, "tsc": last[cpu], "a": a, "b": b})
                continue
            m = BEGIN_RE.match(line)
            if m:
                khz = int(m.group(1))
                continue
            m = CPU_RE.match(line)
            if m:
                cpus[int(m.group(1))] = (int(m.group(2)), int(m.group(3)))
    return khz, recs, cpus


class Builder:
    def __init__(self, khz, recs, truncated=()):
        self.truncated = set(truncated)  # CPUs whose ring filled up: their last records are cut off
        self.khz = khz
        self.t0 = min((r["tsc"] for r in recs), default=0)
        self.events = []
        self.problems = []
        self.slices = {}  # (pid, tid) -> [(start_us, end_us, name)]
        self.host = {}  # cpu -> [(start_tsc, end_tsc, name, kind)]: the host CPU slices that must nest
        self.counts = {}  # name -> how many host slices of that kind
        self.flows = 0
        self.recs = recs

    def us(self, tsc):
        return (tsc - self.t0) * 1000.0 / self.khz

    def slice(self, pid, tid, name, t0, t1, cat, args=None, track=True):
        ev = {"ph": "X", "pid": pid, "tid": tid, "name": name, "cat": cat, "ts": self.us(t0),
              "dur": max(self.us(t1) - self.us(t0), 0.001)}
        if args:
            ev["args"] = args
        self.events.append(ev)
        if track:
            self.slices.setdefault((pid, tid), []).append((ev["ts"], ev["ts"] + ev["dur"], name))
        return ev

    def host_slice(self, cpu, name, kind, t0, t1, cat, args=None):
        """A slice on host CPU `cpu`'s track, checked for nesting (check())."""
        self.host.setdefault(cpu, []).append((t0, t1, name, kind))
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return self.slice(HOST_PID, cpu, name, t0, t1, cat, args, track=False)

    def instant(self, pid, tid, name, tsc, cat, args=None):
        ev = {"ph": "i", "s": "t", "pid": pid, "tid": tid, "name": name, "cat": cat, "ts": self.us(tsc)}
        if args:
            ev["args"] = args
        self.events.append(ev)

    def build(self):
        by_vcpu = {}
        for r in self.recs:
            if r["type"] in (ENTRY, EXIT, VCPU_STOP):
                by_vcpu.setdefault((r["vm"], r["vcpu"]), []).append(r)
        vms = set()
        for (vm, vcpu), rs in by_vcpu.items():
            vms.add(vm)
            # In recording order, not sorted: a vCPU records its entries and exits on its own CPU
            # as they happen, so time going backwards here is hv's bug, and the overlap check
            # below reports it.
            for cur, nxt in zip(rs, rs[1:] + [None]):
                if cur["type"] == ENTRY:
                    if nxt is None or nxt["type"] != EXIT:
                        # The last entry of a vCPU stopped from outside (its VM ended) has no exit.
                        if nxt is not None:
                            self.problems.append(f"vm{vm} vcpu{vcpu}: entry at {cur['tsc']:#x} followed by type {nxt['type']}")
                        continue
                    self.slice(vm, vcpu, "guest", cur["tsc"], nxt["tsc"], "guest")
                elif cur["type"] == EXIT:
                    name = "exit: " + EXIT_REASONS.get(cur["a"], f"reason {cur['a']}")
                    if nxt is None and cur["cpu"] in self.truncated:
                        continue  # the entry after it did not fit in the ring
                    if nxt is None or nxt["type"] not in (ENTRY, VCPU_STOP):
                        self.problems.append(f"vm{vm} vcpu{vcpu}: exit ({name}) at {cur['tsc']:#x} without an entry after it")
                        continue
                    self.slice(vm, vcpu, name, cur["tsc"], nxt["tsc"], "exit", {"qualification": hex(cur["b"])})
        requests, serves = [], []
        for r in self.recs:
            t, vm, vcpu = r["type"], r["vm"], r["vcpu"]
            if t == FAULT:
                dur = r["b"] & 0xFFFFFFFF
                outcome = (r["b"] >> 32) & 0xFF
                name = "fault " + (FAULT_OUTCOMES[outcome] if outcome < len(FAULT_OUTCOMES) else str(outcome))
                self.slice(vm, vcpu, name, r["tsc"], r["tsc"] + dur, "fault",
                           {"gpa": hex(r["a"]), "write": bool((r["b"] >> 48) & 1)}, track=False)
            elif t == INJECT:
                self.instant(vm, vcpu, ("NMI" if r["b"] == 2 else f"inject {r['a']:#x}"), r["tsc"], "irq")
            elif t == WAKE_IPI:
                src = vcpu if vcpu != 0xFF else 0
                self.instant(vm, src, f"wake vcpu{r['a']} (cpu{r['b']})", r["tsc"], "irq")
            elif t == HCALL:
                self.instant(vm, vcpu, f"hypercall {r['a']}", r["tsc"], "hcall", {"status": r["b"] - (1 << 64) if r["b"] >> 63 else r["b"]})
            elif t == FLUSH_REQ:
                dur = r["b"] & 0xFFFFFFFF
                who = "all VMs" if vm == ALL_VMS else f"vm{vm}"
                ev = self.host_slice(r["cpu"], f"flush request {who}", "flush request", r["tsc"], r["tsc"] + dur,
                                     "flush", {"ipis": r["b"] >> 32})
                requests.append((r, ev))
            elif t == FLUSH_SERVE:
                ev = self.slice(HOST_PID, r["cpu"], "flush", r["tsc"], r["tsc"] + 1, "flush", {"tags": hex(r["a"])},
                                track=False)
                serves.append((r, ev))
            elif t == DEFERRED:
                self.host_slice(r["cpu"], f"deferred work vm{vm}", "deferred pass", r["tsc"], r["tsc"] + r["b"], "mmu",
                                {"units": r["a"]})
            elif t == RECLAIM:
                self.host_slice(r["cpu"], f"reclaim vm{vm}", "reclaim", r["tsc"], r["tsc"] + (r["b"] & 0xFFFFFFFF),
                                "mmu", {"units": r["a"], "pages freed": r["b"] >> 32})
            elif t == SLOT_UPDATE:
                kind = r["a"] >> 32
                self.host_slice(r["cpu"], f"memslot {SLOT_KINDS[kind] if kind < 4 else kind} vm{vm}", "memslot change",
                                r["tsc"], r["tsc"] + (r["b"] & 0xFFFFFFFF), "mmu",
                                {"slot": r["a"] & 0xFFFFFFFF, "error": r["b"] >> 32})
            elif t == ZAP_RANGE:
                gfn, pages = r["a"] & ((1 << 52) - 1), r["b"] >> 32
                self.host_slice(r["cpu"], f"zap vm{vm} gfn {gfn:#x}+{pages:#x}", "range zap", r["tsc"],
                                r["tsc"] + (r["b"] & 0xFFFFFFFF), "mmu",
                                {"gfn": hex(gfn), "pages": pages, "address space": r["a"] >> 56})
            elif t == TEARDOWN_STEP:
                pass_, done, helped = r["a"] & 0xF, (r["a"] >> 4) & 1, (r["a"] >> 5) & 1
                name = f"teardown step vm{vm} pass {pass_}" + (", done" if done else "") + (", helping" if helped else "")
                self.host_slice(r["cpu"], name, "teardown step", r["tsc"], r["tsc"] + (r["b"] & 0xFFFFFFFF), "mmu",
                                {"root": hex(r["a"] & ~0xFFF), "units": r["b"] >> 32, "done": bool(done),
                                 "helped": bool(helped)})
            elif t == FAST_ZAP:
                waited = (r["b"] >> 32) & 1
                self.host_slice(r["cpu"], f"fast zap vm{vm}" + (" (waits for teardown)" if waited else ""), "fast zap",
                                r["tsc"], r["tsc"] + (r["b"] & 0xFFFFFFFF), "mmu", {"ticket": r["a"]})
        # Flow arrows: a request to the first flush of its tag on each other CPU after it (that
        # CPU's answer to the IPI while the requester waited, or its lazy flush before its next
        # entry when it was outside guest mode; requests that coalesce share one flush).
        serves.sort(key=lambda x: x[0]["tsc"])
        self.request_flows = []  # (request record, CPUs its flows reach)
        for r, ev in requests:
            seen = set()
            for s, sev in serves:
                if s["tsc"] < r["tsc"] or s["cpu"] == r["cpu"] or s["cpu"] in seen or not (s["a"] & r["a"]):
                    continue
                seen.add(s["cpu"])
                self.flows += 1
                self.events.append({"ph": "s", "id": self.flows, "pid": HOST_PID, "tid": r["cpu"], "name": "flush",
                                    "cat": "flush", "ts": ev["ts"]})
                self.events.append({"ph": "f", "bp": "e", "id": self.flows, "pid": HOST_PID, "tid": s["cpu"],
                                    "name": "flush", "cat": "flush", "ts": sev["ts"]})
            self.request_flows.append((r, seen))
        # Names of the processes and threads.
        for vm in sorted(vms):
            self.events.append({"ph": "M", "pid": vm, "name": "process_name", "args": {"name": f"vm{vm}"}})
        for (vm, vcpu) in sorted(by_vcpu):
            self.events.append({"ph": "M", "pid": vm, "tid": vcpu, "name": "thread_name", "args": {"name": f"vcpu{vcpu}"}})
        self.events.append({"ph": "M", "pid": HOST_PID, "name": "process_name", "args": {"name": "host CPUs"}})
        for cpu in sorted({r["cpu"] for r in self.recs}):
            self.events.append({"ph": "M", "pid": HOST_PID, "tid": cpu, "name": "thread_name", "args": {"name": f"cpu{cpu}"}})

    def check(self, text):
        problems = list(self.problems)
        try:
            back = json.loads(text)
            if not isinstance(back.get("traceEvents"), list):
                problems.append("JSON: no traceEvents list")
        except ValueError as e:
            problems.append(f"JSON: {e}")
        for (pid, tid), sl in self.slices.items():
            for a, b in zip(sl, sl[1:]):
                if b[0] < a[1] - 1e-6:
                    problems.append(f"vm{pid} vcpu{tid}: '{a[2]}' ends at {a[1]:.3f} us after '{b[2]}' starts at {b[0]:.3f} us")
                    break
        # Host CPU slices: one CPU does one thing at a time, so its slices nest (a teardown step
        # inside a deferred pass or a fast zap's wait, a flush request inside a range zap inside a
        # memslot change) and never partly overlap. Compared in TSC ticks, as recorded.
        for cpu, sl in sorted(self.host.items()):
            stack = []
            for t0, t1, name, _ in sorted(sl, key=lambda x: (x[0], -x[1])):
                while stack and stack[-1][1] <= t0:
                    stack.pop()
                if stack and t1 > stack[-1][1]:
                    problems.append(f"cpu{cpu}: '{name}' [{t0:#x}, {t1:#x}) overlaps the end of "
                                    f"'{stack[-1][2]}' [{stack[-1][0]:#x}, {stack[-1][1]:#x})")
                    break
                stack.append((t0, t1, name))
        # Flush flows: both ends, from a request to a flush on another CPU at or after it.
        starts = {e["id"]: e for e in self.events if e["ph"] == "s"}
        ends = {e["id"]: e for e in self.events if e["ph"] == "f"}
        if set(starts) != set(ends):
            problems.append(f"flush flows: {len(set(starts) ^ set(ends))} without both ends")
        for i in set(starts) & set(ends):
            s, f = starts[i], ends[i]
            if f["tid"] == s["tid"] or f["ts"] < s["ts"] - 1e-6:
                problems.append(f"flush flow {i}: from cpu{s['tid']} at {s['ts']:.3f} us to cpu{f['tid']} at {f['ts']:.3f} us")
                break
        # Every CPU a request interrupted must flush for it (the IPI's handler or the exit it
        # forces serves the request): as many flows as IPIs. A full ring elsewhere may have
        # dropped that flush, so the check is off when any ring dropped records.
        if not self.truncated:
            for r, reached in self.request_flows:
                ipis = r["b"] >> 32
                if len(reached) < ipis:
                    problems.append(f"flush request on cpu{r['cpu']} at {r['tsc']:#x} sent {ipis} IPI(s) but "
                                    f"{len(reached)} CPU(s) flushed for it")
                    break
        return problems


def png(builder, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("hv_trace: no PNG (python3-matplotlib is not installed)", file=sys.stderr)
        return False
    tracks = sorted(builder.slices)
    hosts = sorted(builder.host)
    colors = {"guest": "#4caf50"}
    # Host CPU rows: the MMU's and the flushes' work, outer slices first so nested ones show.
    host_colors = {"memslot change": "#9e9e9e", "fast zap": "#8e24aa", "deferred pass": "#fb8c00",
                   "reclaim": "#6d4c41", "range zap": "#fdd835", "teardown step": "#d84315",
                   "flush request": "#1e88e5"}
    fig, ax = plt.subplots(figsize=(14, 1.0 + 0.5 * max(len(tracks) + len(hosts), 1)))
    # Milliseconds from the first vCPU slice (records of the VM's creation come earlier).
    origin = min((sl[0][0] for sl in builder.slices.values() if sl), default=0.0)
    for row, key in enumerate(tracks):
        guest = [((a - origin) / 1000, (b - a) / 1000) for a, b, n in builder.slices[key] if n == "guest"]
        exits = [((a - origin) / 1000, (b - a) / 1000) for a, b, n in builder.slices[key] if n != "guest"]
        ax.broken_barh(guest, (row - 0.4, 0.8), facecolors=colors["guest"], label="guest" if row == 0 else None)
        ax.broken_barh(exits, (row - 0.4, 0.8), facecolors="#e53935", label="exit handling" if row == 0 else None)
    for i, cpu in enumerate(hosts):
        row = len(tracks) + i
        for kind, colour in host_colors.items():
            bars = [((builder.us(a) - origin) / 1000, (builder.us(b) - builder.us(a)) / 1000)
                    for a, b, _, k in builder.host[cpu] if k == kind]
            if bars:
                ax.broken_barh(bars, (row - 0.4, 0.8), facecolors=colour,
                               label=kind if kind not in ax.get_legend_handles_labels()[1] else None)
    # The vCPUs' run sets the scale: the VM's creation and destruction (memslot changes, the
    # last teardown) lie far outside it and would squeeze it into a sliver.
    end = max((sl[-1][1] for sl in builder.slices.values() if sl), default=None)
    if end is not None:
        span = (end - origin) / 1000
        ax.set_xlim(-0.02 * span, 1.02 * span)
    ax.set_yticks(range(len(tracks) + len(hosts)))
    ax.set_yticklabels([f"vm{p} vcpu{t}" for p, t in tracks] + [f"cpu{c} (host)" for c in hosts])
    ax.set_xlabel("ms since the first VM entry")
    ax.set_title("hv trace: guest time and exit handling per vCPU; MMU work and flushes per host CPU")
    if tracks:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("log", help="hv's serial console log")
    ap.add_argument("-o", "--output", default="trace.json", help="Chrome/Perfetto JSON to write")
    ap.add_argument("--png", help="PNG timeline to write")
    ap.add_argument("--check", action="store_true", help="check the trace's consistency; exit 1 on a problem")
    ap.add_argument("--require", action="append", default=[], metavar="KIND",
                    help="with --check: fail unless the trace has host CPU slices of this kind "
                         "(e.g. 'teardown step', 'range zap', 'fast zap', 'flush request'); repeatable")
    args = ap.parse_args()
    khz, recs, cpus = read_log(args.log)
    if khz is None:
        print("hv_trace: no trace in the log (boot hv with hv.trace=CATS)", file=sys.stderr)
        return 1
    b = Builder(khz, recs, [c for c, (_, d) in cpus.items() if d])
    b.build()
    text = json.dumps({"traceEvents": b.events, "displayTimeUnit": "ns",
                       "otherData": {"tsc_khz": khz, "records": len(recs)}})
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        f.write(text)
    dropped = sum(d for _, d in cpus.values())
    kinds = {}
    for r in recs:
        kinds[r["type"]] = kinds.get(r["type"], 0) + 1
    nslices = sum(len(s) for s in b.slices.values())
    print(f"hv_trace: {len(recs)} records ({dropped} dropped) from {len(cpus)} CPU(s): {kinds.get(EXIT, 0)} exits, "
          f"{kinds.get(FAULT, 0)} faults, {kinds.get(INJECT, 0)} injections, {kinds.get(FLUSH_REQ, 0)} flush requests; "
          f"{nslices} vCPU slices on {len(b.slices)} track(s), {b.flows} flush flow(s) -> {args.output}")
    host = ", ".join(f"{n} {k}(s)" for k, n in sorted(b.counts.items()))
    print(f"hv_trace: host CPU slices: {host or 'none'}")
    if args.png and png(b, args.png):
        print(f"hv_trace: timeline -> {args.png}")
    if args.check:
        problems = b.check(text)
        for kind in args.require:
            if not b.counts.get(kind):
                problems.append(f"no '{kind}' slice in the trace (required)")
        for p in problems[:20]:
            print("hv_trace: check failed:", p)
        print("hv_trace: checks: " + ("ok" if not problems else f"{len(problems)} FAILED"))
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
