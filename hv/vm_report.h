// The summary lines of a VM after its run (hv/vm_runner.h prints them): per vCPU and per VM.
// The boot tests read them (tests/boot/scenarios/*.scenario, `expect=` and `summary=`), so
// their wording is a contract: change a line together with the scenarios that match it.
#pragma once

#include <stdint.h>

namespace hv {

struct RunVm;

// "vmN: vcpuI on cpuC: pass|FAIL|not started, ... exits (...), ... root switch(es), ..."
void print_vcpu_summary(RunVm& rv, unsigned vcpu);
// Exits by reason, EPT and fault counts, zaps and teardown, deferred work, emulated accesses,
// the page-table limit, run time. `flushes` (may be null): the machine's remote-flush counters
// over the run (requests, IPIs, skipped, done by others), printed when the run had this one VM.
void print_vm_summary(RunVm& rv, const uint64_t* flushes);

}  // namespace hv
