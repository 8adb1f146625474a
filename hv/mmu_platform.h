// The kernel's implementation of mmu::Platform: pages from the physical memory manager, the
// identity map for phys<->virt, CPU ids from the per-CPU data, EPT TLB flushes by INVEPT here
// and request + IPI on the other CPUs (hv/cpu_work.h), and the TSC as the clock.
//
// Fences: symmetric (mmu/platform.h). The kernel does not yet provide the heavy side of
// asymmetric fences, so the MMU lock's readers and the epoch's pin still execute a full fence
// each (a locked RMW and an MFENCE per fault). What a heavy fence would need here: every
// other CPU answers a request with a fence while the requester waits. The requester is an MMU
// writer or an epoch advance, which may hold locks (the MMU lock's writer side, a memslot
// update's); a CPU in guest mode or idle answers by its mode (with exit_guest_mode() made a
// full fence), but a CPU that spins with interrupts off on one of those locks answers only
// if that spin loop serves requests, which today only the MMU's own waits do (cpu_relax
// below). Serving them from every host spin loop, or with an NMI, is the missing piece.
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

  // Pages allocated through the platform and not yet freed (the runner's page check). Relaxed:
  // a count that orders nothing; the runner reads it after epoch().barrier(), whose
  // synchronization orders every free before the read.
  uint64_t pages_in_use() const { return pages_in_use_.load(mmu::Order::relaxed); }

 private:
  mmu::Atomic<uint64_t> pages_in_use_{0};
};

// The one instance (the MMU's platform for every VM).
KernelPlatform& platform();

}  // namespace hv

namespace mmu {
class Epoch;
}

namespace hv {
// The machine's one epoch (reclamation domain) shared by every VM's MMU. Created on first use
// (on the BSP, before any AP touches it).
mmu::Epoch& epoch();
}  // namespace hv
