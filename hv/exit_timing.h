// What an exit costs the hypervisor: TSC ticks from a VM exit to the next VM entry of the same
// vCPU, by exit reason (tools/hv bench --guest reads the lines this prints).
//
// The interval is the whole time the guest does not run because of that exit: the handler,
// and the safe point before the next entry (cross-CPU requests, bounded deferred MMU work,
// an EPTP switch after a fast zap). It is recorded on the exit path of every exit, so it must
// be cheap and lock-free: each vCPU owns its ExitTiming (only its own CPU writes it, and it is
// read after the vCPU stopped), and a sample is two adds and one increment in a fixed
// log-linear histogram (8 buckets per power of two: a percentile read back from it is within
// 1/8 of the true value, which is far below the noise between runs). Exact count, sum and max.
#pragma once

#include <stdint.h>

namespace hv {

class ExitTiming {
 public:
  // The reasons the benchmark asks about, the rest, and every exit together. Port I/O to the
  // guest's 16550 is apart from other port I/O: a console write may print a whole line inside
  // its exit, which says nothing about the cost of an I/O exit.
  enum Kind : uint8_t { kCpuid, kHlt, kEptViolation, kVmcall, kIo, kIoConsole, kOther, kAll, kKinds };
  static constexpr unsigned kSubBits = 3;                  // 8 buckets per power of two
  static constexpr unsigned kBuckets = 64 << kSubBits;     // every 64-bit value

  void reset();
  // The exit boundary: remember the reason and the TSC when the guest stopped.
  void exited(unsigned basic_reason, uint64_t tsc) {
    pending_kind_ = kind_of(basic_reason);  // one VMREAD more, for I/O exits only
    pending_tsc_ = tsc;
    pending_ = true;
  }
  // Just before the next VM entry: the interval since the exit is the exit's cost.
  void entering(uint64_t tsc) {
    if (!pending_) return;
    pending_ = false;
    const uint64_t ticks = tsc - pending_tsc_;
    add(pending_kind_, ticks);
    add(kAll, ticks);
  }
  // One parseable line per kind that has samples:
  //   "vmV: vcpuC: exit-cost reason=cpuid count=N median=T p99=T max=T mean=T (tsc ticks)"
  void print(unsigned vm, unsigned vcpu) const;

  uint64_t count(Kind k) const { return count_[k]; }
  // The value at quantile q/1000 (midpoint of its bucket; the exact max for q = 1000).
  uint64_t quantile(Kind k, unsigned q_per_mille) const;

 private:
  static Kind kind_of(unsigned basic_reason);
  static unsigned bucket_of(uint64_t v);
  static uint64_t bucket_mid(unsigned b);
  void add(Kind k, uint64_t ticks) {
    count_[k]++;
    sum_[k] += ticks;
    if (ticks > max_[k]) max_[k] = ticks;
    hist_[k][bucket_of(ticks)]++;
  }

  uint64_t count_[kKinds] = {};
  uint64_t sum_[kKinds] = {};
  uint64_t max_[kKinds] = {};
  uint32_t hist_[kKinds][kBuckets] = {};
  uint64_t pending_tsc_ = 0;
  Kind pending_kind_ = kOther;
  bool pending_ = false;
};

}  // namespace hv
