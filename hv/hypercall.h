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

// A VMCALL with this RAX only reads, whatever the caller's mode and privilege: VERSION,
// POOL_INFO and VCPU_INFO (in 64-bit mode a set upper half makes it an unknown call, and a
// refusal reads nothing either). handle_hypercall declares these exits quiet; the guest-mode
// loop (hv/fast_entry.h) handles them without leaving guest mode. STAT is quiet too but sums
// counters over every CPU: it takes the ordinary exit path.
inline bool hypercall_reads_only(uint64_t rax) {
  const uint32_t nr = static_cast<uint32_t>(rax);
  return nr == HV_CALL_VERSION || nr == HV_CALL_POOL_INFO || nr == HV_CALL_VCPU_INFO;
}

}  // namespace hv
