#!/usr/bin/env python3
"""PNG charts of hv's benchmark results (tools/hv bench writes the JSON, then runs this).

usage: bench_plot.py [--host build/bench.json] [--guest build/bench-guest.json] --out DIR

Charts, each drawn only from what the JSON files hold (a missing file or series is reported
and skipped, never invented):
  fault-throughput.png   host: MMU faults per second against the number of faulting threads
                         (BM_FaultThroughput/N)
  zap-teardown.png       host: leaf zap (BM_ZapLeaves4K/GiB) and root teardown
                         (BM_TeardownRoot/GiB) time against GiB mapped; guest: fast-zap
                         time until torn down (deferred) and the synchronous wait, against
                         GiB mapped (bench-guest.json fast_zap)
  exit-cost.png          guest: hv's cost per VM exit by reason, median and p99 (exit_cost)
  guest-ratios.png       guest: time under hv / bare by EPT backing (4k, 2m, 1g) for first
                         touch (sequential, random) and re-touch (workload)
Needs matplotlib (Debian: python3-matplotlib); without it, prints why and exits 0 with
nothing drawn. Exit status 1 only for unreadable input.
"""
import argparse
import json
import os
import re
import sys


def load(path):
    if not path:
        return None
    if not os.path.exists(path):
        print(f"bench_plot: {path} not found: its charts are skipped")
        return None
    with open(path) as f:
        return json.load(f)


def host_series(host, family):
    """[(arg, benchmark dict)] of a Google Benchmark family, sorted by its first argument."""
    out = []
    for b in (host or {}).get("benchmarks", []):
        m = re.match(rf"^{family}/([0-9]+)", b.get("name", ""))
        if m and b.get("run_type", "iteration") == "iteration":
            out.append((int(m.group(1)), b))
    return sorted(out, key=lambda t: t[0])


def ms(b):
    unit = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b.get("time_unit", "ns")]
    return b["real_time"] * unit


class Plotter:
    def __init__(self, plt, out):
        self.plt, self.out, self.written, self.skipped = plt, out, [], []

    def save(self, fig, name):
        path = os.path.join(self.out, name)
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        self.plt.close(fig)
        self.written.append(path)
        print(f"bench_plot: wrote {path}")

    def skip(self, name, why):
        self.skipped.append(name)
        print(f"bench_plot: {name} skipped: {why}")

    def fault_throughput(self, host):
        s = [(n, b["faults_per_sec"]) for n, b in host_series(host, "BM_FaultThroughput") if "faults_per_sec" in b]
        if not s:
            return self.skip("fault-throughput.png", "no BM_FaultThroughput results in the host JSON")
        fig, ax = self.plt.subplots(figsize=(6, 4))
        ax.plot([n for n, _ in s], [v / 1e6 for _, v in s], "o-")
        ax.set_xlabel("faulting threads")
        ax.set_ylabel("million faults / s (all threads)")
        ax.set_xticks([n for n, _ in s])
        ax.set_ylim(bottom=0)
        ax.set_title("EPT fault throughput (host build of the MMU)")
        ax.grid(alpha=0.3)
        self.save(fig, "fault-throughput.png")

    def zap_teardown(self, host, guest):
        zap = [(g, ms(b)) for g, b in host_series(host, "BM_ZapLeaves4K")]
        tear = [(g, ms(b)) for g, b in host_series(host, "BM_TeardownRoot")]
        fz = (guest or {}).get("fast_zap", {})
        deferred, sync = [], []
        for key, z in sorted(fz.items(), key=lambda kv: kv[1].get("mapped_gib", 0)):
            if z.get("leaf") != "2m":
                continue
            d = (z.get("deferred") or {}).get("until_torn_down")
            w = (z.get("synchronous") or {}).get("wait")
            if d is not None:
                deferred.append((z["mapped_gib"], d))
            if w is not None:
                sync.append((z["mapped_gib"], w))
        panels = [p for p in (("host", zap or tear), ("guest", deferred or sync)) if p[1]]
        if not panels:
            return self.skip("zap-teardown.png", "neither BM_ZapLeaves4K/BM_TeardownRoot nor fast_zap results")
        fig, axes = self.plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
        for ax, (kind, _) in zip(axes[0], panels):
            if kind == "host":
                if zap:
                    ax.plot([g for g, _ in zap], [v for _, v in zap], "o-", label="zap leaves (4 KiB)")
                if tear:
                    ax.plot([g for g, _ in tear], [v for _, v in tear], "s-", label="tear down root")
                ax.set_ylabel("ms (host, wall time)")
                ax.set_title("MMU zap and teardown (host build)")
            else:
                if deferred:
                    ax.plot([g for g, _ in deferred], [v for _, v in deferred], "o-", label="fast zap, deferred: until torn down")
                if sync:
                    ax.plot([g for g, _ in sync], [v for _, v in sync], "s-", label="fast zap, synchronous: call")
                ax.set_ylabel("TSC ticks (in the guest's emulator)")
                ax.set_title(f"Fast zap in a guest, 2 MiB leaves ({(guest or {}).get('emulator', '?')})")
            ax.set_xlabel("GiB mapped")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=8)
        self.save(fig, "zap-teardown.png")

    def exit_cost(self, guest):
        ec = (guest or {}).get("exit_cost", {})
        rows = [(r, c["median"], c["p99"]) for r, c in ec.items() if c and c.get("median") is not None]
        if not rows:
            return self.skip("exit-cost.png", "no exit_cost in the guest JSON")
        fig, ax = self.plt.subplots(figsize=(7, 0.45 * len(rows) + 1.5))
        y = range(len(rows))
        ax.barh([i + 0.2 for i in y], [m for _, m, _ in rows], height=0.4, label="median")
        ax.barh([i - 0.2 for i in y], [p for _, _, p in rows], height=0.4, label="p99")
        ax.set_yticks(list(y))
        ax.set_yticklabels([r for r, _, _ in rows], fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("TSC ticks from VM exit to the next VM entry")
        ax.set_title(f"hv's cost per exit by reason ({guest.get('emulator', '?')})")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="x", which="both")
        self.save(fig, "exit-cost.png")

    def guest_ratios(self, guest):
        wl = (guest or {}).get("workload", {})
        keys = [("ratio_first_touch_seq", "first touch, sequential"), ("ratio_first_touch_random", "first touch, random"),
                ("ratio_retouch", "re-touch")]
        # tools/bench_guest.py keys the runs "hv-4k", "hv-2m", "hv-1g".
        runs = {bk: wl.get(f"hv-{bk}") for bk in ("4k", "2m", "1g")}
        backings = [bk for bk, r in runs.items() if isinstance(r, dict)]
        if not backings or not any(runs[bk].get(k) is not None for bk in backings for k, _ in keys):
            return self.skip("guest-ratios.png", "no workload ratios in the guest JSON")
        fig, ax = self.plt.subplots(figsize=(7, 4))
        width = 0.8 / len(keys)
        for i, (k, label) in enumerate(keys):
            vals = [runs[bk].get(k) or 0 for bk in backings]
            ax.bar([j + (i - 1) * width for j in range(len(backings))], vals, width=width, label=label)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(backings)))
        ax.set_xticklabels([f"{bk} backing" for bk in backings])
        ax.set_ylabel("time under hv / time bare")
        ax.set_yscale("log")
        ax.set_title(f"Guest memory workload under hv against bare ({guest.get('emulator', '?')})")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y", which="both")
        self.save(fig, "guest-ratios.png")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host")
    ap.add_argument("--guest")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"bench_plot: skipped: matplotlib is not installed for {sys.executable} "
              "(Debian: apt-get install python3-matplotlib)")
        return 0
    try:
        host, guest = load(a.host), load(a.guest)
    except (OSError, ValueError) as e:
        print(f"bench_plot: unreadable input: {e}")
        return 1
    os.makedirs(a.out, exist_ok=True)
    p = Plotter(plt, a.out)
    p.fault_throughput(host)
    p.zap_teardown(host, guest)
    p.exit_cost(guest)
    p.guest_ratios(guest)
    print(f"bench_plot: {len(p.written)} chart(s) written to {a.out}, {len(p.skipped)} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
