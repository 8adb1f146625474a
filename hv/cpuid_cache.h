// A vCPU's CPUID answers, remembered (the exit fast path, issue 13). cpuid::guest_cpuid() is a
// pure function of its Inputs; for one vCPU all of them are fixed for its life (the features,
// its index, the VM's vCPU count, the TSC rate, MAXPHYADDR) except the guest state CPUID
// reflects: CR4.OSXSAVE and XCR0. So an answer is found again under the key (leaf, subleaf,
// OSXSAVE, XCR0) - everything that varies - and a guest that changes CR4 or XCR0 simply looks
// up other keys. Direct-mapped, a handful of entries: guests ask the same few leaves over and
// over (Linux's sync_core and the benchmarks' CPUID loops use leaf 0 or 1); one that walks
// every leaf only evicts. Owned by its vCPU (no locking). Pure code, tested on the host
// (tests/unit/cpuid_cache_test.cpp) against the policy itself.
#pragma once

#include <stdint.h>

#include "hv/cpuid_policy.h"

namespace hv::cpuid {

class Cache {
 public:
  static constexpr unsigned kEntries = 16;
  // The remembered answer for this key, or nullptr: then the caller builds the policy's
  // Inputs (only then: it costs more than the lookup) and calls fill().
  const Regs* find(uint32_t leaf, uint32_t subleaf, bool osxsave, uint64_t xcr0) {
    const Entry& e = e_[slot(leaf, subleaf)];
    if (!e.valid || e.leaf != leaf || e.subleaf != subleaf || e.osxsave != osxsave || e.xcr0 != xcr0) return nullptr;
    hits_++;
    return &e.regs;
  }
  // The policy's answer for `in` (whose varying part is guest_cr4_osxsave and guest_xcr0; the
  // rest must be the same on every call), remembered.
  Regs fill(const Inputs& in, uint32_t leaf, uint32_t subleaf) {
    Entry& e = e_[slot(leaf, subleaf)];
    e.regs = guest_cpuid(in, leaf, subleaf);
    e.leaf = leaf;
    e.subleaf = subleaf;
    e.osxsave = in.guest_cr4_osxsave;
    e.xcr0 = in.guest_xcr0;
    e.valid = true;
    misses_++;
    return e.regs;
  }
  Regs lookup(const Inputs& in, uint32_t leaf, uint32_t subleaf) {
    const Regs* r = find(leaf, subleaf, in.guest_cr4_osxsave, in.guest_xcr0);
    return r ? *r : fill(in, leaf, subleaf);
  }
  void clear() { *this = Cache{}; }
  uint64_t hits() const { return hits_; }
  uint64_t misses() const { return misses_; }

 private:
  struct Entry {
    uint32_t leaf = 0, subleaf = 0;
    uint64_t xcr0 = 0;
    bool osxsave = false, valid = false;
    Regs regs{};
  };
  // Basic, hypervisor and extended leaves differ in their top bits only: fold them in.
  static unsigned slot(uint32_t leaf, uint32_t subleaf) { return (leaf ^ (leaf >> 27) ^ (subleaf * 5)) % kEntries; }
  Entry e_[kEntries];
  uint64_t hits_ = 0, misses_ = 0;
};

}  // namespace hv::cpuid
