// The kernel's implementation of mmu::Platform: pages from the physical memory manager, the
// identity map for phys<->virt, CPU ids from the per-CPU data, EPT TLB flushes by INVEPT here
// and request + IPI on the other CPUs (hv/cpu_work.h), and the TSC as the clock.
//
// Fences: asymmetric (mmu/platform.h) unless hv.fences=symmetric: the MMU lock's readers and
// the epoch's pin fence nothing, and the heavy side is a fence request to every other CPU
// (cpu_work::fence_all_cpus, hv/cpu_work.h "Fence requests"). fences_init() below decides.
#pragma once

#include "mmu/atomic.h"
#include "mmu/platform.h"

namespace hv {

class KernelPlatform final : public mmu::Platform {
 public:
  mmu::hpa_t alloc_page() override;
  void free_page(mmu::hpa_t page) override;
  void* phys_to_virt(mmu::hpa_t pa) override { return reinterpret_cast<void*>(pa); }
  mmu::hpa_t virt_to_phys(const void* va) override { return reinterpret_cast<mmu::hpa_t>(va); }
  unsigned cpu_id() override;
  unsigned cpu_count() override;
  void flush_remote_tlbs(uint64_t tlb_tag) override;
  // hv.dirty=pml: every vCPU of the VM drains its page-modification log (hv/pml.h).
  void drain_dirty_logs(uint64_t tlb_tag) override;
  bool should_yield() override;
  void cpu_relax() override;
  uint64_t timestamp() override;
  // hv.trace=mmu: the MMU's range zaps and teardown steps as trace records (hv/trace.h).
  void trace_zap_range(uint64_t tlb_tag, unsigned as_id, mmu::gfn_t start, mmu::gfn_t end, uint64_t t0) override;
  void trace_teardown_step(uint64_t tlb_tag, mmu::hpa_t root, uint64_t t0, unsigned units, unsigned pass, bool done,
                           bool helped) override;

  // Turns asymmetric fences on (fences_init(), before any MMU object exists).
  void enable_asymmetric_fences() { asymmetric_fences_ = true; }

  // Pages allocated through the platform and not yet freed (the runner's page check). Relaxed:
  // a count that orders nothing; the runner reads it after epoch().barrier(), whose
  // synchronization orders every free before the read.
  uint64_t pages_in_use() const { return pages_in_use_.load(mmu::Order::relaxed); }

 private:
  void serialize_all_cpus() override;

  mmu::Atomic<uint64_t> pages_in_use_{0};
};

// The one instance (the MMU's platform for every VM).
KernelPlatform& platform();

// hv.fences=asymmetric (the default) or symmetric: whether the MMU uses asymmetric fences. On,
// it installs the spin-wait hooks (x86::g_spin_wait_hook, mmu::spin_wait_hook) that answer
// fence requests and checks once that every other CPU answers one. BSP, once, after
// cpu_work::init() and before any MMU object (the machine's epoch, a VM) exists. Returns the
// failure, if a CPU did not answer (the fences stay symmetric then).
const char* fences_init();

}  // namespace hv

namespace mmu {
class Epoch;
}

namespace hv {
// The machine's one epoch (reclamation domain) shared by every VM's MMU. Created on first use
// (on the BSP, before any AP touches it).
mmu::Epoch& epoch();
}  // namespace hv
