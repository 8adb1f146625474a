// Hypercalls: the VMCALL exit handler and the statistics snapshot it shares with the summary.
// The ABI (numbers, registers, status codes, limits) is tests/guests/lib/hv_abi.h, shared with
// the guests; docs/hypercalls.md explains it and the permission model.
#pragma once

#include "hv/exit.h"
#include "mmu/memslot.h"
#include "tests/guests/lib/hv_abi.h"

namespace hv {

class Vm;

// Handles the VMCALL exit (installed in the exit table for VMCALL).
void handle_hypercall(Vcpu& vcpu, const ExitInfo& exit);
// The counters of HV_CALL_STAT / HV_CALL_STATS_COPY for `vm`, taken now. Reads maintained
// counters only (no walk of the EPT): its cost does not grow with what the guest mapped.
void snapshot_stats(Vm& vm, hv_stats& out);
// The HV_E* status of an MMU memslot/dirty-log error.
int64_t hypercall_status(mmu::MemslotError e);

}  // namespace hv
