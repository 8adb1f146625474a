#!/usr/bin/env python3
"""tools/hv_stat.py against a console log written here: it parses hv's stat lines
(hv/vm_stat.h), keeps VMs apart, turns cumulative counts into rates between a VM's lines,
ignores everything else, and stops at hv's power-off line."""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
import hv_stat  # noqa: E402

fails = 0


def check(cond, what):
    global fails
    if not cond:
        fails += 1
        print("hv_stat_check: FAILED:", what)


check(hv_stat.parse("hv: vm1: lapic: ok") is None, "a guest line is not a stat line")
check(hv_stat.parse("hv: vm2: stat: t=500 exits=10 i/o-instruction=7") == (2, 500, {"exits": 10, "i/o-instruction": 7}),
      "a stat line parses")
check(hv_stat.parse("hv: vm2: stat: t=500 exits=ten") is None, "a malformed value is not a stat line")

t = hv_stat.Table()
t.update(1, 1000, {"exits": 100, "cpuid": 10})
t.update(2, 1000, {"exits": 5})
t.update(1, 1500, {"exits": 600, "cpuid": 10})
check(abs(t.rates[1]["exits"] - 1000.0) < 1e-9, "vm1 exits: 500 in 0.5 s is 1000/s")
check(t.rates[1]["cpuid"] == 0.0, "vm1 cpuid: unchanged is 0/s")
check(abs(t.rates[2]["exits"] - 5.0) < 1e-9, "vm2's first line: its average since the start")
text = t.render()
check(text.index("vm1") < text.index("vm2"), "VMs in order")
check(text.index("exits") < text.index("cpuid"), "sorted by rate")

with tempfile.TemporaryDirectory() as d:
    log = os.path.join(d, "serial.log")
    with open(log, "w") as f:
        f.write("hv: vm1: guest: hello\nhv: vm1: stat: t=100 exits=50 cpuid=5\n"
                "hv: vm1: stat: t=200 exits=150 cpuid=5\nhv: power off (status 0x10)\nhv: vm1: stat: t=300 exits=999\n")
    out = subprocess.run([sys.executable, hv_stat.__file__, log, "--timeout", "10"], capture_output=True, text=True)
    check(out.returncode == 0, "follow mode ends at the power-off line")
    check("1000" in out.stdout and "999" not in out.stdout, "follow mode: the rate 1000/s, nothing after power-off")
    check(out.stdout.strip().endswith("hv: power off (status 0x10)"), "the power-off line is shown last")
    once = subprocess.run([sys.executable, hv_stat.__file__, "--once", log], capture_output=True, text=True)
    check(once.returncode == 0 and "999" in once.stdout, "--once reads the whole log")
    with open(log, "w") as f:
        f.write("hv: result: PASS\n")
    none = subprocess.run([sys.executable, hv_stat.__file__, "--once", log], capture_output=True, text=True)
    check(none.returncode == 1 and "hv.stat-ms" in none.stderr, "--once without stat lines says how to get them")

print("hv_stat_check: %s" % ("ok" if not fails else "%d FAILED" % fails))
sys.exit(1 if fails else 0)
