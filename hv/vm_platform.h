// A VM's own mmu::Platform: the machine's (hv/mmu_platform.h) plus a quota on the pages the
// VM's MMU may take (hv.pt-limit=N). The MMU turns a refused page into an out_of_memory fault
// outcome, which stops that VM with a report (hv/exit_ept.cpp); hv and other VMs go on.
//
// What counts: every page the VM's MMU allocates through this platform (roots and their
// metadata, table pages, its per-vCPU page caches) minus the pages it frees through it
// directly. Table pages that leave the tree are freed later by the machine-wide epoch, through
// the machine's platform, so they are not credited back: under heavy churn (fast zaps) the
// count only grows, and the quota stops a VM earlier, never later. That is the safe direction
// for a limit whose point is to keep one guest from taking hv's memory. A VM without a limit
// does not use the wrapper at all (hv/guest_mmu.cpp).
#pragma once

#include <stdint.h>

#include "hv/mmu_platform.h"

namespace hv {

class VmPlatform final : public mmu::Platform {
 public:
  // 0: no limit. Takes effect for the next allocation; reset() zeroes the count and the
  // "limit hit" mark (VM creation).
  void set_limit(uint64_t pages) { __atomic_store_n(&limit_, pages, __ATOMIC_RELAXED); }
  void reset();
  uint64_t limit() const { return __atomic_load_n(&limit_, __ATOMIC_RELAXED); }
  uint64_t pages() const { return __atomic_load_n(&pages_, __ATOMIC_RELAXED); }
  bool limit_hit() const { return __atomic_load_n(&limit_hit_, __ATOMIC_RELAXED); }

  mmu::hpa_t alloc_page() override;
  void free_page(mmu::hpa_t page) override;
  void* phys_to_virt(mmu::hpa_t pa) override { return platform().phys_to_virt(pa); }
  mmu::hpa_t virt_to_phys(const void* va) override { return platform().virt_to_phys(va); }
  unsigned cpu_id() override { return platform().cpu_id(); }
  unsigned cpu_count() override { return platform().cpu_count(); }
  void flush_remote_tlbs(uint64_t tlb_tag) override { platform().flush_remote_tlbs(tlb_tag); }
  bool should_yield() override { return platform().should_yield(); }
  void cpu_relax() override { platform().cpu_relax(); }
  uint64_t timestamp() override { return platform().timestamp(); }

 private:
  uint64_t limit_ = 0;
  uint64_t pages_ = 0;
  bool limit_hit_ = false;
};

}  // namespace hv
