// Exit-to-entry cost histograms (see exit_timing.h).
#include "hv/exit_timing.h"

#include "arch/x86/log.h"
#include "arch/x86/string.h"
#include "arch/x86/vmx/exit_reason.h"
#include "arch/x86/vmx/instructions.h"

namespace hv {

// kind_of() (inline in the header) spells the basic reasons as numbers.
static_assert(x86::vmx::kExitCpuid == 10 && x86::vmx::kExitHlt == 12 && x86::vmx::kExitVmcall == 18 &&
              x86::vmx::kExitIoInstruction == 30 && x86::vmx::kExitEptViolation == 48);

namespace {
const char* const kNames[ExitTiming::kKinds] = {"cpuid", "hlt", "ept-violation", "vmcall", "io", "io-console", "other", "all"};
}

// memset, not assignment from a temporary: the histograms are too large for a kernel stack.
void ExitTiming::reset() { memset(this, 0, sizeof *this); }

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
