// hv's one way of counting: statistics counters that several CPUs bump at once.
//
// Built on mmu::Atomic (the project's typed atomics, mmu/atomic.h) with relaxed operations:
// a counter orders nothing and publishes nothing, it only must not lose counts (every update
// is one atomic read-modify-write). Whoever reads a counter to print it gets some value the
// counter had; when a reader needs the final value (a VM's summary after its vCPUs stopped),
// the happens-before edge comes from elsewhere (VmRunState::mark_finished/finished, a
// release/acquire pair), not from the counter.
//
// Counters that only one CPU writes and that are read after that CPU is done (VcpuStats,
// ExitTiming) stay plain integers: single-writer ownership, stated where they are declared.
// One that only one CPU writes but others read while it counts is an OwnedCounter (below): no
// locked instruction, no shared line written (a VM's counters, hv/vm_stats.h).
// Reads convert implicitly, so code that sums counters is unchanged; pass get() to
// printf-style functions (varargs must not receive a class).
#pragma once

#include <stdint.h>

#include "mmu/atomic.h"

namespace hv {

class Counter {
 public:
  constexpr Counter() = default;
  constexpr Counter(uint64_t v) : v_(v) {}  // NOLINT: implicit, for "= 0" initializers
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  void operator++(int) { v_.fetch_add(1, mmu::Order::relaxed); }
  void operator++() { v_.fetch_add(1, mmu::Order::relaxed); }
  Counter& operator+=(uint64_t d) {
    v_.fetch_add(d, mmu::Order::relaxed);
    return *this;
  }
  uint64_t get() const { return v_.load(mmu::Order::relaxed); }
  operator uint64_t() const { return get(); }  // NOLINT: implicit on purpose (see above)
  // Start again from 0 (before anyone else can touch the counter, e.g. at VM creation).
  void reset() { v_.store(0, mmu::Order::relaxed); }

 private:
  mmu::Atomic<uint64_t> v_{0};
};

// A counter that only one CPU ever writes (a vCPU's slice of its VM's counters, hv/vm_stats.h):
// a relaxed load and a relaxed store, no locked instruction, so bumping it writes only the
// owner's cache line and never waits for it. An atomic only so that a reader on another CPU is
// not a data race; it sees some value the counter had. Two writers would lose counts.
class OwnedCounter {
 public:
  constexpr OwnedCounter() = default;
  OwnedCounter(const OwnedCounter&) = delete;
  OwnedCounter& operator=(const OwnedCounter&) = delete;

  void operator++(int) { *this += 1; }
  void operator++() { *this += 1; }
  OwnedCounter& operator+=(uint64_t d) {
    v_.store(v_.load(mmu::Order::relaxed) + d, mmu::Order::relaxed);
    return *this;
  }
  uint64_t get() const { return v_.load(mmu::Order::relaxed); }
  operator uint64_t() const { return get(); }  // NOLINT: implicit, as Counter's
  void reset() { v_.store(0, mmu::Order::relaxed); }

 private:
  mmu::Atomic<uint64_t> v_{0};
};

// The largest value seen (a CAS loop that only ever raises it). Relaxed for the same reason.
class MaxCounter {
 public:
  void raise_to(uint64_t v) {
    uint64_t cur = v_.load(mmu::Order::relaxed);
    while (v > cur && !v_.compare_exchange(cur, v, mmu::Order::relaxed)) {
    }
  }
  uint64_t get() const { return v_.load(mmu::Order::relaxed); }
  void reset() { v_.store(0, mmu::Order::relaxed); }

 private:
  mmu::Atomic<uint64_t> v_{0};
};

}  // namespace hv
