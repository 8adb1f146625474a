#!/usr/bin/env python3
"""tools/hv_trace.py against trace logs written here (hv/trace.h's format): a consistent trace
converts and passes --check; each kind of inconsistency the check is there for makes it fail."""
import json
import os
import subprocess
import sys
import tempfile

TOOL = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "hv_trace.py")
fails = 0


def check(cond, what):
    global fails
    if not cond:
        fails += 1
        print("hv_trace_check: FAILED:", what)


def rec(typ, vm, vcpu, dtsc, a=0, b=0):
    return f"{typ:x}.{vm:x}.{vcpu:x}.{dtsc % (1 << 64):x}.{a:x}.{b:x}"


def log(cpu0, cpu1, dropped=(0, 0)):
    lines = ["hv: trace: begin tsc_khz=1000 cpus=2 mask=0x3f"]
    for cpu, recs in ((0, cpu0), (1, cpu1)):
        if recs:
            lines.append(f"hv: trace: C {cpu:x} " + " ".join(recs))
        lines.append(f"hv: trace: cpu{cpu}: {len(recs)} records, {dropped[cpu]} dropped")
    lines.append("hv: trace: end")
    return "\n".join(lines) + "\n"


def run(text):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "serial.log")
        with open(path, "w") as f:
            f.write(text)
        out = os.path.join(d, "trace.json")
        p = subprocess.run([sys.executable, TOOL, path, "-o", out, "--check"], capture_output=True, text=True)
        data = json.load(open(out)) if os.path.exists(out) else None
        return p.returncode, p.stdout + p.stderr, data


# vCPU 0 on cpu0: entry, exit (EPT violation, with a fault inside), entry, exit (CPUID), stop;
# cpu0 requests a flush (vm tag 1 -> bit 2) that cpu1 serves; vCPU 1 on cpu1 enters and exits.
good0 = [rec(1, 1, 0, 1000), rec(2, 1, 0, 100, 48, 0x181), rec(4, 1, 0, -90 + 100, 0x5000, 20),
         rec(1, 1, 0, 90), rec(2, 1, 0, 50, 10), rec(7, 1, 0xFF, 10, 2, 30 | (1 << 32)), rec(3, 1, 0, 40)]
good1 = [rec(1, 1, 1, 1000), rec(2, 1, 1, 160, 1), rec(8, 0, 0xFF, 110, 2), rec(1, 1, 1, 20)]
rc, out, data = run(log(good0, good1))
check(rc == 0 and "checks: ok" in out, "a consistent trace passes: " + out)
if data:
    names = [e.get("name") for e in data["traceEvents"]]
    check("exit: EPT violation" in names and "exit: CPUID" in names, "exit slices named by reason")
    check(names.count("guest") == 3, "three guest slices")
    check(any(e.get("name") == "fault fixed" for e in data["traceEvents"]), "the fault slice")
    check(sum(1 for e in data["traceEvents"] if e.get("ph") == "s") == 1, "one flush flow from cpu0 to cpu1")
    check({e["args"]["name"] for e in data["traceEvents"] if e.get("ph") == "M"} >= {"vm1", "vcpu0", "vcpu1", "host CPUs"},
          "process and thread names")

# An exit with no entry after it (and the ring not full): fails.
rc, out, _ = run(log(good0[:2], good1))
check(rc == 1 and "without an entry" in out, "an unmatched exit fails the check: " + out)
# The same with the ring full (records dropped): the cut-off is not an error.
rc, out, _ = run(log(good0[:2], good1, dropped=(5, 0)))
check(rc == 0, "an exit cut off by a full ring passes: " + out)
# Overlapping slices on one vCPU: an exit stamped before the entry it follows.
bad = [rec(1, 1, 0, 1000), rec(2, 1, 0, 100), rec(1, 1, 0, 50), rec(2, 1, 0, -100), rec(3, 1, 0, 400)]
rc, out, _ = run(log(bad, []))
check(rc == 1, "out-of-order entry/exit fails the check: " + out)


def seq(*recs):
    """Records given with absolute TSCs (typ, vm, vcpu, tsc, a, b), as deltas in ring order."""
    out, prev = [], 0
    for typ, vm, vcpu, tsc, a, b in recs:
        out.append(rec(typ, vm, vcpu, tsc - prev, a, b))
        prev = tsc
    return out


# Host CPU work: a deferred pass [1000, 1100) with two teardown steps inside it, written when
# each ends (so stamped with its start: deltas go back), then a fast zap [2000, 2300) whose wait
# ran a step, a memslot change [3000, 3400) with its range zap [3050, 3300) and that zap's flush
# request [3100, 3200), which sent one IPI to cpu1, and cpu1's flush for it at 3150.
root = 0x123000
host0 = seq((14, 1, 0xFF, 1010, root | 1, 30 | (512 << 32)),
            (14, 1, 0xFF, 1050, root | 2 | 1 << 4, 40 | (300 << 32)),
            (9, 1, 0xFF, 1000, 812, 100),
            (14, 1, 0xFF, 2100, (root + 0x1000) | 3 | 1 << 4 | 1 << 5, 50 | (20 << 32)),
            (10, 1, 0xFF, 2000, 7, 300 | 1 << 32),
            (7, 1, 0xFF, 3100, 2, 100 | 1 << 32),
            (13, 1, 0xFF, 3050, 0x100 | 0 << 56, 250 | (0x200 << 32)),
            (12, 1, 0xFF, 3000, 5 | 1 << 32, 400))
serve1 = seq((8, 0, 0xFF, 3150, 2, 0))
rc, out, data = run(log(host0, serve1))
check(rc == 0 and "checks: ok" in out, "nested host slices pass: " + out)
check("3 teardown step(s)" in out and "1 range zap(s)" in out and "1 fast zap(s)" in out, "host slice counts: " + out)
if data:
    names = [e.get("name") for e in data["traceEvents"]]
    check("teardown step vm1 pass 2, done" in names, "a teardown step slice named with its pass: %s" % names)
    check("teardown step vm1 pass 3, done, helping" in names, "a helping step")
    check("zap vm1 gfn 0x100+0x200" in names, "the range zap slice with its gfns")
    check("fast zap vm1 (waits for teardown)" in names, "the fast zap slice")
    check(sum(1 for e in data["traceEvents"] if e.get("ph") == "s") == 1, "one flush flow from the request")
# A teardown step that ends after the pass that ran it: a partial overlap, which fails.
bad0 = seq((14, 1, 0xFF, 1010, root | 1, 200 | (512 << 32)), (9, 1, 0xFF, 1000, 512, 100))
rc, out, _ = run(log(bad0, []))
check(rc == 1 and "overlaps the end of" in out, "a step sticking out of its pass fails: " + out)
# A flush request that sent an IPI with no flush on the other CPU: fails.
rc, out, _ = run(log(host0, []))
check(rc == 1 and "sent 1 IPI(s) but 0 CPU(s) flushed" in out, "a request nobody answered fails: " + out)
# ... unless a ring dropped records (the answer may be among them).
rc, out, _ = run(log(host0, [], dropped=(0, 3)))
check(rc == 0, "an answer lost to a full ring passes: " + out)
# A flush before the request cannot be its answer: no flow, so the request fails again.
early1 = seq((8, 0, 0xFF, 3090, 2, 0))
rc, out, _ = run(log(host0, early1))
check(rc == 1 and "sent 1 IPI(s)" in out, "a flush before the request is not its answer: " + out)
# --require: a kind of slice that is not there fails.
with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "serial.log")
    open(path, "w").write(log(good0, good1))
    p = subprocess.run([sys.executable, TOOL, path, "-o", os.path.join(d, "t.json"), "--check", "--require",
                        "teardown step"], capture_output=True, text=True)
    check(p.returncode == 1 and "no 'teardown step' slice" in p.stdout, "--require fails without the slice: " + p.stdout)

# No trace at all: a clear message.
rc, out, _ = run("hv: result: PASS\n")
check(rc == 1 and "hv.trace" in out, "a log without a trace says how to get one")

print("hv_trace_check: %s" % ("ok" if not fails else "%d FAILED" % fails))
sys.exit(1 if fails else 0)
