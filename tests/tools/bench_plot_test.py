#!/usr/bin/env python3
"""tools/bench_plot.py on small fixture JSON files: every chart is written and is a real PNG.

Run by hand (python3 tests/tools/bench_plot_test.py, with Debian's python3-matplotlib); not
part of `tools/hv test`, whose CI machine does not install matplotlib. Exit 77 (skip) when
matplotlib is missing, 1 when a chart is missing or not a PNG, or when a chart appears for a
series the input lacks.
"""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PLOT = os.path.join(HERE, "..", "..", "tools", "bench_plot.py")
CHARTS = ["fault-throughput.png", "zap-teardown.png", "exit-cost.png", "guest-ratios.png"]


def run(out, *args):
    r = subprocess.run([sys.executable, PLOT, "--out", out, *args], capture_output=True, text=True)
    print(r.stdout, end="")
    if r.returncode:
        print(f"FAIL: bench_plot.py exited {r.returncode}: {r.stderr}")
        sys.exit(1)


def main():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("SKIP: matplotlib is not installed")
        return 77
    fx = os.path.join(HERE, "fixtures")
    with tempfile.TemporaryDirectory() as out:
        run(out, "--host", os.path.join(fx, "bench.json"), "--guest", os.path.join(fx, "bench-guest.json"))
        for c in CHARTS:
            p = os.path.join(out, c)
            if not os.path.exists(p) or os.path.getsize(p) < 1000:
                print(f"FAIL: {c} missing or too small")
                return 1
            with open(p, "rb") as f:
                if f.read(8) != b"\x89PNG\r\n\x1a\n":
                    print(f"FAIL: {c} is not a PNG")
                    return 1
    with tempfile.TemporaryDirectory() as out:
        # Only the host file: the guest charts must be skipped, not drawn empty.
        run(out, "--host", os.path.join(fx, "bench.json"), "--guest", os.path.join(out, "absent.json"))
        got = sorted(os.listdir(out))
        if got != ["fault-throughput.png", "zap-teardown.png"]:
            print(f"FAIL: with the host JSON only, got {got}")
            return 1
    print(f"PASS: {len(CHARTS)} charts from the fixtures; guest charts skipped without guest data")
    return 0


if __name__ == "__main__":
    sys.exit(main())
