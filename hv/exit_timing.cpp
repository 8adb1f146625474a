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

ExitTiming::Kind ExitTiming::kind_of(unsigned basic_reason) {
  switch (basic_reason) {
    case vmx::kExitCpuid: return kCpuid;
    case vmx::kExitHlt: return kHlt;
    case vmx::kExitEptViolation: return kEptViolation;
    case vmx::kExitVmcall: return kVmcall;
    case vmx::kExitIoInstruction: {
      // Exit qualification bits 31:16: the port (SDM table "Exit Qualification for I/O
      // Instructions"). COM1 is 0x3F8-0x3FF.
      const uint64_t port = (vmx::vmread(vmx::field::kExitQualification) >> 16) & 0xFFFF;
      return (port & ~7ull) == 0x3F8 ? kIoConsole : kIo;
    }
    default: return kOther;
  }
}

// Log-linear: values below 2^kSubBits have a bucket each; above, the position of the top bit
// picks the octave and the kSubBits bits below it the bucket inside the octave.
unsigned ExitTiming::bucket_of(uint64_t v) {
  if (v < (1u << kSubBits)) return static_cast<unsigned>(v);
  const unsigned top = 63 - static_cast<unsigned>(__builtin_clzll(v));
  const unsigned sub = static_cast<unsigned>(v >> (top - kSubBits)) & ((1u << kSubBits) - 1);
  return ((top - kSubBits + 1) << kSubBits) + sub;
}

uint64_t ExitTiming::bucket_mid(unsigned b) {
  if (b < (1u << kSubBits)) return b;
  const unsigned octave = (b >> kSubBits) - 1 + kSubBits;  // the top bit's position
  const uint64_t sub = b & ((1u << kSubBits) - 1);
  const uint64_t lo = (uint64_t{1} << octave) | (sub << (octave - kSubBits));
  const uint64_t width = uint64_t{1} << (octave - kSubBits);
  return lo + width / 2;
}

uint64_t ExitTiming::quantile(Kind k, unsigned q_per_mille) const {
  const uint64_t n = count_[k];
  if (!n) return 0;
  if (q_per_mille >= 1000) return max_[k];
  // The smallest value with at least ceil(n * q) samples at or below it.
  uint64_t rank = (n * q_per_mille + 999) / 1000;
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (unsigned b = 0; b < kBuckets; b++) {
    seen += hist_[k][b];
    if (seen >= rank) {
      const uint64_t mid = bucket_mid(b);
      return mid > max_[k] ? max_[k] : mid;
    }
  }
  return max_[k];
}

void ExitTiming::print(unsigned vm, unsigned vcpu) const {
  for (unsigned k = 0; k < kKinds; k++) {
    if (!count_[k]) continue;
    const Kind kind = static_cast<Kind>(k);
    log::info("vm%u: vcpu%u: exit-cost reason=%s count=%lu median=%lu p99=%lu max=%lu mean=%lu (tsc ticks, exit to next entry)",
              vm, vcpu, kNames[k], count_[k], quantile(kind, 500), quantile(kind, 990), max_[k], sum_[k] / count_[k]);
  }
}

}  // namespace hv
