// Test helper: a Platform that forwards to a HostPlatform and lets a test see the MMU's yield
// points. should_yield() answers what the test says (and counts the questions); cpu_relax(),
// which the MMU calls where it waits or has just given up its lock/epoch section at a yield
// point, runs a test callback (not reentrantly: the callback may itself call into the MMU). The
// callback sees the state the MMU is in at that point: the test can check that no epoch section
// is open and that the MMU lock is free, or change the tree behind the walker's back.
#pragma once

#include <functional>

#include "mmu/epoch.h"
#include "mmu/memslot.h"
#include "mmu/mmu.h"
#include "tests/host/host_platform.h"

namespace hvtest {

class ProbePlatform final : public mmu::Platform {
 public:
  explicit ProbePlatform(HostPlatform& host) : host_(host) {}

  mmu::hpa_t alloc_page() override { return host_.alloc_page(); }
  void free_page(mmu::hpa_t page) override { host_.free_page(page); }
  void* phys_to_virt(mmu::hpa_t pa) override { return host_.phys_to_virt(pa); }
  mmu::hpa_t virt_to_phys(const void* va) override { return host_.virt_to_phys(va); }
  unsigned cpu_id() override { return host_.cpu_id(); }
  unsigned cpu_count() override { return host_.cpu_count(); }
  void flush_remote_tlbs(uint64_t tlb_tag) override { host_.flush_remote_tlbs(tlb_tag); }
  bool should_yield() override {
    asked++;
    return yield;
  }
  void cpu_relax() override {
    relaxed++;
    if (on_relax && !in_callback_) {
      in_callback_ = true;
      on_relax();
      in_callback_ = false;
    }
    host_.cpu_relax();
  }
  uint64_t timestamp() override { return host_.timestamp(); }

  HostPlatform& host() { return host_; }

  bool yield = false;                // what should_yield() answers
  uint64_t asked = 0;                // should_yield() calls
  uint64_t relaxed = 0;              // cpu_relax() calls
  std::function<void()> on_relax;    // run from cpu_relax(), not reentrantly

 private:
  HostPlatform& host_;
  bool in_callback_ = false;
};

// One VM's MMU on a ProbePlatform (TestVm's counterpart; single-threaded tests).
struct ProbeVm {
  ProbePlatform& platform;
  mmu::Epoch epoch;
  mmu::Memslots slots;
  mmu::Mmu mmu;

  explicit ProbeVm(ProbePlatform& p, mmu::MmuConfig cfg = {})
      : platform(p), epoch(p), slots(p, epoch, mmu::MemslotConfig{46}), mmu(p, epoch, slots, cfg) {}

  mmu::MemslotError add_slot(uint32_t id, mmu::gfn_t base, uint64_t npages, mmu::hpa_t backing,
                             uint8_t max_level, uint32_t as_id = 0) {
    mmu::Memslot s;
    s.id = id;
    s.as_id = as_id;
    s.base_gfn = base;
    s.npages = npages;
    s.backing_hpa = backing;
    s.max_level = max_level;
    return mmu.update_memslot(mmu::MemslotOp::create(s));
  }

  // Fault until the outcome is not `retry` (bounded).
  mmu::FaultOutcome fault(mmu::VcpuMmu& v, mmu::gfn_t gfn, unsigned access = mmu::spte::kAccRead) {
    mmu::FaultOutcome o = mmu::FaultOutcome::retry;
    for (int i = 0; i < 100 && o == mmu::FaultOutcome::retry; i++) {
      mmu.vcpu_load_root(v);
      o = mmu.map(v, gfn, access);
    }
    return o;
  }
};

// A vCPU of a ProbeVm that releases its MMU state when it goes out of scope (also when a
// REQUIRE throws).
struct ProbeVcpu : mmu::VcpuMmu {
  ProbeVm& vm;
  explicit ProbeVcpu(ProbeVm& v, unsigned as_id = 0) : vm(v) { vm.mmu.vcpu_init(*this, as_id); }
  ~ProbeVcpu() { vm.mmu.vcpu_release(*this); }
};

}  // namespace hvtest
