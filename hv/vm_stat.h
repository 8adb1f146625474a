// Live counters of a running VM (issue 15's `tools/hv stat`, like kvm_stat): with hv.stat-ms=N,
// one console line per VM every N ms of run time (0, the default: none). The line is a contract
// read by tools/hv_stat.py; every value is cumulative since the VM started, the reader turns
// them into rates with `t`:
//   vmK: stat: t=MS exits=N <exit-reason>=N ... faults-fixed=N faults-spurious=N faults-retry=N
//            faults-unbacked=N faults-oom=N leaves-4k=N leaves-2m=N leaves-1g=N tables=N zaps=N
//            flushes=N roots-invalid=N hypercalls=N
// (exit reasons with a non-zero count only, spaces as dashes: ept-violation, io-instruction, ...).
// The due time is VmStatClock's (hv/vm_stat_clock.h): whichever vCPU of the VM first passes it
// at a safe point prints the line, from counters any CPU may read while vCPUs bump them
// (VmStats::totals, MmuStats): approximate while the VM runs, as a live view may be.
#pragma once

#include <stdint.h>

namespace hv {

class Vm;

// hv.stat-ms, read once per run by the runner; 0 when off.
uint64_t stat_period_ms();
// One line for `vm`, `elapsed_ms` into its run.
void print_vm_stat(Vm& vm, uint64_t elapsed_ms);

}  // namespace hv
