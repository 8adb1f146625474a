// VmStats: a VM's counters (exits by reason, emulated accesses, hypercalls, time in and out of
// the guest), without a cache line that two vCPUs write.
//
// Every exit bumps some of these. As one set of shared atomics they cost each exit a locked
// read-modify-write on lines that every vCPU of the VM writes: the contention issue 13 removed
// from the fault path. So each vCPU owns a slice (whole cache lines) and bumps it with plain
// stores (OwnedCounter, hv/counter.h); readers add the slices up (totals()).
//
// Contract:
//   - Writers: only code running for vCPU i writes slice i (its exits, on its own CPU).
//   - Readers, any CPU, any time: totals() is the sum of values each slice had at some moment.
//     While vCPUs run it is approximate (the live hv.stat-ms line, the STAT hypercall); after
//     they finished and the reader synchronized with that (VmRunState's release/acquire), it
//     is exact (the VM's summary).
//   - reset() only while no vCPU runs (VM creation).
#pragma once

#include <stdint.h>

#include "arch/x86/vmx/exit_reason.h"
#include "hv/counter.h"
#include "hv/vm_limits.h"

namespace hv {

// The counters, once as one vCPU's slice (C = OwnedCounter) and once as the VM's totals
// (C = uint64_t): one list of fields for both.
template <class C>
struct VmCountersOf {
  C exits[x86::vmx::kExitReasonCount] = {};
  C exits_other = {};      // reasons beyond the table
  // (EPT violations are exits[kExitEptViolation]: every one goes through dispatch_exit.)
  C oom_retries = {};      // EPT violations that hit the page limit and were retried after reclaim
  C guest_tsc = {};        // TSC cycles between entry and exit, summed
  C host_exit_tsc = {};    // TSC cycles spent handling exits
  // Guest memory accesses that hv emulated instead of mapping (hv/exit_ept.cpp).
  C unbacked_reads = {};   // loads from a gpa without a slot: all ones
  C unbacked_writes = {};  // stores there: dropped
  C readonly_writes = {};  // stores to a read-only slot: dropped
  C hypercalls = {};
  C hypercall_errors = {};

  // Every exit, whatever its reason.
  uint64_t total_exits() const {
    uint64_t t = exits_other;
    for (const C& e : exits) t += e;
    return t;
  }
};

// f(a's field, b's same field) for each field; a and b are slices or totals, const or not.
template <class A, class B, class F>
void zip_counters(A& a, B& b, F f) {
  for (unsigned r = 0; r < x86::vmx::kExitReasonCount; r++) f(a.exits[r], b.exits[r]);
  f(a.exits_other, b.exits_other);
  f(a.oom_retries, b.oom_retries);
  f(a.guest_tsc, b.guest_tsc);
  f(a.host_exit_tsc, b.host_exit_tsc);
  f(a.unbacked_reads, b.unbacked_reads);
  f(a.unbacked_writes, b.unbacked_writes);
  f(a.readonly_writes, b.readonly_writes);
  f(a.hypercalls, b.hypercalls);
  f(a.hypercall_errors, b.hypercall_errors);
}

using VmCounters = VmCountersOf<OwnedCounter>;
using VmTotals = VmCountersOf<uint64_t>;

class VmStats {
 public:
  // vCPU `vcpu`'s slice: only that vCPU writes it.
  VmCounters& of(unsigned vcpu) { return slices_[vcpu].c; }

  VmTotals totals() const {
    VmTotals t;
    for (const Slice& s : slices_)
      zip_counters(t, s.c, [](uint64_t& sum, const OwnedCounter& c) { sum += c.get(); });
    return t;
  }
  void reset() {
    for (Slice& s : slices_) zip_counters(s.c, s.c, [](OwnedCounter& c, OwnedCounter&) { c.reset(); });
  }

 private:
  // A slice on lines of its own: one vCPU's exits never write a line another vCPU writes.
  struct alignas(64) Slice {
    VmCounters c;
  };
  static_assert(sizeof(Slice) % 64 == 0, "a slice is whole cache lines");
  Slice slices_[kMaxVcpus];
};

}  // namespace hv
