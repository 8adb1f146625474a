// The host (Linux user-space) implementation of mmu::Platform, for tests and benchmarks.
//
// * Pages come from the C heap; "physical" addresses are the pages' virtual addresses.
// * Every live page is tracked: a double free, a free of a page never handed out, or a page
//   still allocated at the end of a test is reported.
// * Freed pages are poisoned and kept in quarantine, so a write through a stale pointer is
//   caught by check_quarantine() (and a read of one sees the poison pattern, not stale data).
// * Host threads act as CPUs: a thread gets its CPU id from a HostCpu scope (the main thread is
//   CPU 0).
// * An allocation limit simulates memory exhaustion; should_yield() answers at random with a
//   configurable probability, so that yield/restart paths are exercised.
// * Asymmetric fences (mmu/platform.h) through Linux's membarrier(2), the process-private
//   expedited kind: the kernel makes every CPU that runs one of our threads execute a full
//   barrier, which is what the heavy side needs. Where the system call is missing or refused
//   (an old kernel, a seccomp filter), or with Fences::symmetric, both sides fence instead.
//   HV_HOST_FENCES=symmetric in the environment makes that the default (to compare).
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <unordered_set>
#include <vector>

#include "mmu/atomic.h"
#include "mmu/platform.h"

namespace hvtest {

inline constexpr uint8_t kPoisonByte = 0x5A;

class HostPlatform final : public mmu::Platform {
 public:
  enum class Fences { asymmetric, symmetric };
  // Fences::asymmetric falls back to symmetric where membarrier(2) does not work.
  explicit HostPlatform(unsigned cpus = 4, Fences fences = default_fences());
  static Fences default_fences();
  // Whether membarrier(2) works here (the answer of the first call is kept).
  static bool membarrier_available();
  ~HostPlatform();

  mmu::hpa_t alloc_page() override;
  void free_page(mmu::hpa_t page) override;
  void* phys_to_virt(mmu::hpa_t pa) override { return reinterpret_cast<void*>(pa); }
  mmu::hpa_t virt_to_phys(const void* va) override { return reinterpret_cast<mmu::hpa_t>(va); }
  unsigned cpu_id() override;
  unsigned cpu_count() override { return cpus_; }
  void flush_remote_tlbs(uint64_t tlb_tag) override;
  bool should_yield() override;
  void cpu_relax() override;
  uint64_t timestamp() override;
  // PML (mmu::DirtyMode::pml): calls the drain hook, if any (tests model the vCPUs' logs).
  void drain_dirty_logs(uint64_t tlb_tag) override {
    if (drain_hook_) drain_hook_(tlb_tag);
  }

  // --- Test controls and observations ---
  // Allocate and touch `n` pages now; alloc_page() hands them out (zeroed) before it asks the
  // heap again. For benchmarks: a page fresh from the heap is new memory to the host kernel,
  // and its first touch is a host page fault (about 20 us in a virtual machine), which would
  // be timed as part of the MMU fault that allocates a table. The kernel's physical memory
  // manager hands out memory that is already there; a reserve makes the host do the same.
  void reserve_pages(size_t n);
  // Fail allocations once `limit` pages are live (0: no limit).
  void set_page_limit(uint64_t limit) { page_limit_.store(limit, mmu::Order::relaxed); }
  // Probability (0..1) that should_yield() says yes.
  void set_yield_probability(double p) { yield_probability_ = p; }
  // Called (on the flushing thread) by every flush_remote_tlbs().
  void set_flush_hook(std::function<void(uint64_t)> hook) { flush_hook_ = std::move(hook); }
  // Called (on the harvesting thread) by every drain_dirty_logs().
  void set_drain_hook(std::function<void(uint64_t)> hook) { drain_hook_ = std::move(hook); }

  uint64_t live_pages() const;
  uint64_t pages_allocated_total() const { return allocs_.load(mmu::Order::relaxed); }
  uint64_t pages_freed_total() const { return frees_.load(mmu::Order::relaxed); }
  uint64_t flush_count() const { return flushes_.load(mmu::Order::relaxed); }
  // Heavy fences done (serialize_all_cpus() calls).
  uint64_t heavy_fences() const { return heavy_fences_.load(mmu::Order::relaxed); }
  bool is_live(mmu::hpa_t page) const;
  // Verify every quarantined page still holds the poison pattern; returns the number of
  // corrupted pages (a write after free). Also releases the quarantine.
  size_t check_quarantine();
  // Errors seen so far (double free, foreign free); each also fails the test that checks it.
  uint64_t errors() const { return errors_.load(mmu::Order::relaxed); }

 private:
  void serialize_all_cpus() override;

  unsigned cpus_;
  mutable std::mutex lock_;
  std::unordered_set<uintptr_t> live_;
  std::vector<void*> quarantine_;
  std::vector<void*> reserve_;  // reserve_pages(): handed out first
  mmu::Atomic<uint64_t> page_limit_{0};
  mmu::Atomic<uint64_t> live_count_{0};
  mmu::Atomic<uint64_t> allocs_{0};
  mmu::Atomic<uint64_t> frees_{0};
  mmu::Atomic<uint64_t> flushes_{0};
  mmu::Atomic<uint64_t> errors_{0};
  mmu::Atomic<uint64_t> heavy_fences_{0};
  double yield_probability_ = 0.0;
  std::function<void(uint64_t)> flush_hook_;
  std::function<void(uint64_t)> drain_hook_;
};

// Makes the current thread act as CPU `id` for its lifetime.
class HostCpu {
 public:
  explicit HostCpu(unsigned id);
  ~HostCpu();
  HostCpu(const HostCpu&) = delete;
  HostCpu& operator=(const HostCpu&) = delete;

 private:
  unsigned previous_;
};

}  // namespace hvtest
