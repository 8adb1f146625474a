// Epoch-based reclamation: the MMU's stand-in for RCU.
//
// Contract
// --------
// * Readers (lockless walkers of EPT tables, aging, memslot lookups) bracket their accesses with
//   read_lock()/read_unlock() (or an EpochReadGuard). The section is cheap: one store and one
//   fence on the current CPU's slot, no shared cache line written. Sections nest.
// * A CPU reports a quiescent state (quiescent()) at points where it holds no reference to
//   anything reclaimable: every VM exit/entry boundary and idle in the kernel. A CPU that is
//   offline or idle can be marked with set_online(false); it does not hold up grace periods.
// * retire(obj, fn) hands an object over for freeing. fn(obj) runs only after a full grace
//   period: every CPU has, since the retire, been outside a read-side section. Objects that a
//   TLB may still reference (page-table pages) must be retired only after the TLB flush that
//   covers them has completed; the MMU orders "unlink, flush, retire".
// * synchronize() waits for one grace period (no reader that started before the call is still
//   running when it returns); must not be called inside a read-side section.
// * barrier() waits until every callback retired before the call has run (on any CPU).
// * poll() runs the callbacks of the current CPU whose grace period has completed, at most
//   `budget` of them; the kernel calls it at safe points (before VM entry, in idle).
//
// Implementation: a global epoch counter; each CPU publishes the epoch it entered a read
// section in (or "not reading"). The global epoch advances when every online CPU is either
// not reading or reading in the current epoch; objects retired in epoch e are freed once the
// global epoch reaches e + 2.
#pragma once

#include "mmu/atomic.h"
#include "mmu/platform.h"
#include "mmu/types.h"

namespace mmu {

// An intrusive list node embedded in (or placed over) each retired object.
struct EpochCallback {
  EpochCallback* next = nullptr;
  void (*fn)(EpochCallback*) = nullptr;
  uint64_t epoch = 0;
};

class Epoch {
 public:
  explicit Epoch(Platform& platform);
  Epoch(const Epoch&) = delete;
  Epoch& operator=(const Epoch&) = delete;

  void read_lock();
  void read_unlock();
  bool in_read_section() const;  // on the current CPU (for assertions)

  void quiescent();
  void set_online(bool online);  // for the current CPU

  // Queue `cb` (with cb->fn set by the caller) on the current CPU's deferred list.
  void retire(EpochCallback* cb);

  void synchronize();
  void barrier();
  // Run up to `budget` ready callbacks of the current CPU; returns how many ran.
  unsigned poll(unsigned budget);

  // Statistics.
  uint64_t current_epoch() const;
  uint64_t pending() const;  // callbacks retired and not yet run, on all CPUs

  Platform& platform() { return platform_; }

 private:
  Platform& platform_;
  // Implementation state is defined in epoch.cpp's companion section below.
  struct alignas(64) CpuState {
    Atomic<uint64_t> reader_epoch{0};  // 0: not in a read section; else epoch | 1 ...
    Atomic<uint32_t> nesting{0};
    Atomic<uint32_t> online{1};
    Atomic<EpochCallback*> pending_head{nullptr};
    Atomic<uint64_t> pending_count{0};
  };
  Atomic<uint64_t> global_epoch_{2};
  CpuState cpus_[Platform::kMaxCpus];
};

class EpochReadGuard {
 public:
  explicit EpochReadGuard(Epoch& e) : e_(e) { e_.read_lock(); }
  ~EpochReadGuard() { e_.read_unlock(); }
  EpochReadGuard(const EpochReadGuard&) = delete;
  EpochReadGuard& operator=(const EpochReadGuard&) = delete;

 private:
  Epoch& e_;
};

}  // namespace mmu
