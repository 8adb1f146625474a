// PerCpuCounters: statistics counters that the fault path bumps without writing a shared line.
//
// Each CPU has its own slot (whole cache lines, never shared with another CPU's slot or with
// anything else); reading a counter sums it over the slots that were ever written. A counter
// that goes down (leaves zapped on another CPU than the one that mapped them) makes one slot
// "negative": the slots are unsigned and wrap, and the sum modulo 2^64 is exact.
//
// Owner-only writes: a slot is written only by code running as its CPU, with a relaxed load and
// store (no locked instruction: the fault path's statistics cost two plain stores). That needs
// what the epoch's per-CPU state already needs (mmu/epoch.h): one thread per CPU id at a time,
// and no MMU operation from an interrupt handler that could interrupt one on the same CPU. The
// words are atomics only so that readers on other CPUs (stats()) are not data races; a reader
// sees each slot's value at some moment, so a sum taken while CPUs update it is approximate, and
// exact at quiescent points (no MMU operation in flight), which is what the tests compare.
#pragma once

#include "mmu/atomic.h"
#include "mmu/platform.h"
#include "mmu/types.h"

namespace mmu {

template <unsigned N>
class PerCpuCounters {
 public:
  static constexpr unsigned kCounters = N;

  void add(unsigned cpu, unsigned counter, uint64_t delta) {
    MMU_ASSERT(cpu < Platform::kMaxCpus && counter < N);
    if (MMU_UNLIKELY(cpu >= used_.load(Order::relaxed))) note_used(cpu);
    Atomic<uint64_t>& c = slots_[cpu].v[counter];
    // Relaxed, and not an RMW: only this CPU writes this slot (see above).
    c.store(c.load(Order::relaxed) + delta, Order::relaxed);
  }
  void sub(unsigned cpu, unsigned counter, uint64_t delta) { add(cpu, counter, uint64_t{0} - delta); }

  uint64_t sum(unsigned counter) const {
    MMU_ASSERT(counter < N);
    uint64_t s = 0;
    const unsigned used = used_.load(Order::relaxed);
    for (unsigned i = 0; i < used; i++) s += slots_[i].v[counter].load(Order::relaxed);
    return s;
  }

 private:
  // Whole lines per CPU: N counters rounded up to a multiple of 8 words.
  struct alignas(64) Slot {
    Atomic<uint64_t> v[N];
  };
  static_assert(sizeof(Slot) % 64 == 0, "a slot is whole cache lines");

  void note_used(unsigned cpu) {
    // Relaxed is enough: a reader that misses a slot just sums an older picture, and the
    // quiescent points where sums must be exact come after the writer's thread synchronized
    // with the reader (joins, locks) anyway.
    uint32_t u = used_.load(Order::relaxed);
    while (u <= cpu && !used_.compare_exchange(u, cpu + 1, Order::relaxed)) {
    }
  }

  // Read by stats() only; written once per CPU (the first time it counts something).
  alignas(64) Atomic<uint32_t> used_{0};
  alignas(64) Slot slots_[Platform::kMaxCpus];
};

}  // namespace mmu
