// Exit-to-entry cost histograms (see exit_timing.h).
#include "hv/exit_timing.h"

#include "arch/x86/log.h"
#include "arch/x86/string.h"
#include "arch/x86/vmx/exit_reason.h"
#include "arch/x86/vmx/instructions.h"

namespace hv {

namespace {
const char* const kNames[ExitTiming::kKinds] = {"cpuid", "hlt", "ept-violation", "vmcall", "io", "io-console", "other", "all"};
}

// memset, not assignment from a temporary: the histograms are too large for a kernel stack.
void ExitTiming::reset() { memset(this, 0, sizeof *this); }

ExitTiming::Kind ExitTiming::kind_of(unsigned basic_reason, uint64_t qualification) {
  switch (basic_reason) {
    case x86::vmx::kExitCpuid: return kCpuid;
    case x86::vmx::kExitHlt: return kHlt;
    case x86::vmx::kExitEptViolation: return kEptViolation;
    case x86::vmx::kExitVmcall: return kVmcall;
    case x86::vmx::kExitIoInstruction: {
      // Exit qualification bits 31:16: the port (SDM table "Exit Qualification for I/O
      // Instructions"). COM1 is 0x3F8-0x3FF.
      const uint64_t port = (qualification >> 16) & 0xFFFF;
      return (port & ~7ull) == 0x3F8 ? kIoConsole : kIo;
    }
    default: return kOther;
  }
}

void ExitTiming::print(unsigned vm, unsigned vcpu) {
  hist_[kAll].clear();
  for (unsigned k = 0; k < kAll; k++) hist_[kAll].merge(hist_[k]);
  for (unsigned k = 0; k < kKinds; k++) {
    const LogHistogram& h = hist_[k];
    if (!h.count()) continue;
    x86::log::info("vm%u: vcpu%u: exit-cost reason=%s count=%lu median=%lu p99=%lu max=%lu mean=%lu (tsc ticks, exit to next entry)",
              vm, vcpu, kNames[k], h.count(), h.quantile(500), h.quantile(990), h.max(), h.mean());
  }
}

}  // namespace hv
