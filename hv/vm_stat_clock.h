// When a running VM prints its live counters (hv.stat-ms=N; hv/vm_stat.h prints them,
// `tools/hv stat` reads them): every `period` ticks of the caller's clock from `start`, exactly
// one caller gets to print. Any vCPU of the VM may ask at its safe points (each exit, each
// wake-up of a halted or parked vCPU); the first that finds a period due claims it with a CAS
// on the next due time, so a VM prints one line per period however many vCPUs it has, and a
// vCPU that was asleep for several periods prints one line, not a burst (periods missed are
// skipped: the line carries the time, the reader computes rates from it).
//
// Pure code on mmu/atomic.h (host tests with real threads: tests/unit/vm_stat_clock_test.cpp).
// The due time orders nothing: the counters a line prints are atomics of their own.
#pragma once

#include <stdint.h>

#include "mmu/atomic.h"

namespace hv {

class VmStatClock {
 public:
  // Before any vCPU runs. period 0: never due.
  void start(uint64_t now, uint64_t period) {
    period_ = period;
    start_ = now;
    next_.store(period ? now + period : ~0ull, mmu::Order::relaxed);
  }
  // True for the one caller that claims the period due at `now`; *elapsed = now - start.
  bool claim(uint64_t now, uint64_t* elapsed) {
    uint64_t due = next_.load(mmu::Order::relaxed);
    while (now >= due) {
      // The next due time after `now`: whole periods from the start, so lines stay on the grid.
      const uint64_t next = due + ((now - due) / period_ + 1) * period_;
      // Try to take this period; on failure another vCPU took it (or a later one): look again.
      if (next_.compare_exchange(due, next, mmu::Order::relaxed)) {
        *elapsed = now - start_;
        return true;
      }
    }
    return false;
  }
  bool enabled() const { return period_ != 0; }

 private:
  mmu::Atomic<uint64_t> next_{~0ull};
  uint64_t period_ = 0, start_ = 0;  // written before the vCPUs start (published with their jobs)
};

}  // namespace hv
