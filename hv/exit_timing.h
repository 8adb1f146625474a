// What an exit costs the hypervisor: TSC ticks from a VM exit to the next VM entry of the same
// vCPU, by exit reason (tools/hv bench --guest reads the lines this prints).
//
// The interval is the whole time the guest does not run because of that exit: the handler,
// and the safe point before the next entry (cross-CPU requests, bounded deferred MMU work,
// an EPTP switch after a fast zap). It is recorded on the exit path of every exit, so it must
// be cheap and lock-free: each vCPU owns its ExitTiming (only its own CPU writes it, and it is
// read after the vCPU stopped), and a sample is a few adds in a fixed log-linear histogram
// (hv/exit_histogram.h: 8 buckets per power of two, so a percentile read back from it is within
// 1/16 of the true value). Exact count, sum and max.
#pragma once

#include <stdint.h>

#include "hv/exit_histogram.h"

namespace hv {

class ExitTiming {
 public:
  // The reasons the benchmark asks about, the rest, and every exit together. Port I/O to the
  // guest's 16550 is apart from other port I/O: a console write may print a whole line inside
  // its exit, which says nothing about the cost of an I/O exit.
  enum Kind : uint8_t { kCpuid, kHlt, kEptViolation, kVmcall, kIo, kIoConsole, kOther, kAll, kKinds };

  void reset();
  // The exit boundary: remember the reason and the TSC when the guest stopped.
  // `qualification`: the exit's, which tells the console's port I/O from the rest.
  void exited(unsigned basic_reason, uint64_t qualification, uint64_t tsc) {
    pending_kind_ = kind_of(basic_reason, qualification);
    pending_tsc_ = tsc;
    pending_ = true;
  }
  // Just before the next VM entry: the interval since the exit is the exit's cost.
  void entering(uint64_t tsc) {
    if (!pending_) return;
    pending_ = false;
    const uint64_t ticks = tsc - pending_tsc_;
    hist_[pending_kind_].add(ticks);  // kAll: summed from the others by print()
  }
  // One parseable line per kind that has samples:
  //   "vmV: vcpuC: exit-cost reason=cpuid count=N median=T p99=T max=T mean=T (tsc ticks)"
  // First it fills kAll with the sum of the other kinds (not recorded per exit: one histogram
  // add per exit, not two).
  void print(unsigned vm, unsigned vcpu);

  // kAll: only after print().
  const LogHistogram& histogram(Kind k) const { return hist_[k]; }

 private:
  // Inline: every exit asks. The basic reasons are the SDM's (Appendix C): CPUID 10, HLT 12,
  // VMCALL 18, I/O 30, EPT violation 48 (arch/x86/vmx/exit_reason.h has the names; this header
  // stays free of it for the host tests).
  static Kind kind_of(unsigned basic_reason, uint64_t qualification) {
    switch (basic_reason) {
      case 10: return kCpuid;
      case 12: return kHlt;
      case 48: return kEptViolation;
      case 18: return kVmcall;
      case 30:
        // Exit qualification bits 31:16: the port (SDM table "Exit Qualification for I/O
        // Instructions"). COM1 is 0x3F8-0x3FF.
        return (((qualification >> 16) & 0xFFFF) & ~7ull) == 0x3F8 ? kIoConsole : kIo;
      default: return kOther;
    }
  }

  LogHistogram hist_[kKinds];
  uint64_t pending_tsc_ = 0;
  Kind pending_kind_ = kOther;
  bool pending_ = false;
};

}  // namespace hv
