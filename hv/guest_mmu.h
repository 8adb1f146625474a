// The VM layer's view of its EPT MMU: the memslots of guest RAM, a root per vCPU, the EPT
// violation handler, statistics and teardown. A thin adapter over mmu::Mmu and mmu::Memslots
// (the portable TDP MMU in mmu/), so that the VMX code speaks in vCPU indices and MapResults
// and never sees the MMU's locking or reclamation.
#pragma once

#include <stdint.h>

#include "mmu/memslot.h"
#include "mmu/mmu.h"
#include "mmu/types.h"

namespace hv {

// Guest RAM: [base_gfn, base_gfn + npages) backed by host-physically contiguous memory.
struct RamSlot {
  const char* name;
  mmu::gfn_t base_gfn;
  uint64_t npages;
  mmu::hpa_t backing_hpa;
};

enum class MapResult : uint8_t { kFixed, kSpurious, kRetry, kUnbacked, kWriteProtected, kBadGfn, kOutOfMemory };
inline constexpr unsigned kMapResultCount = 7;
const char* to_string(MapResult r);

// The VM's deferred-work passes (GuestMmu::run_deferred_work), from every CPU that runs them:
// before each VM entry (hv/vcpu.cpp) and in idle (hv/hypervisor.cpp idle_work). A pass is one
// call: teardown units (SPTEs visited, at most the budget) plus the epoch poll.
struct DeferredStats {
  uint64_t passes = 0;
  uint64_t busy_passes = 0;  // passes that did teardown work
  uint64_t units = 0;        // teardown units, summed
  uint64_t max_units = 0;    // the most units one pass used
  uint64_t max_budget = 0;   // the largest budget a pass was given
  uint64_t max_tsc = 0;      // the longest pass, in TSC ticks
};

class GuestMmu {
 public:
  static constexpr unsigned kMaxSlots = 8;
  static constexpr unsigned kMaxVcpus = 4;

  // Creates the memslots (address space 0) and the MMU. max_level: largest leaf (1 = 4 KiB,
  // 2 = 2 MiB, 3 = 1 GiB). Returns nullptr or why not.
  const char* init(uint64_t vm_id, const RamSlot* slots, unsigned count, int max_level, unsigned guest_phys_bits);
  // The root table's physical address for `vcpu`, before every VM entry: a fast zap makes the
  // vCPU load a fresh root here. 0 when out of memory.
  mmu::hpa_t load_root(unsigned vcpu);
  // Make `gfn` accessible for `access` (mmu::spte::Access bits): the EPT-violation handler.
  MapResult map(unsigned vcpu, mmu::gfn_t gfn, unsigned access);
  // Safe point before VM entry: bounded deferred work (root teardown, epoch callbacks),
  // timed and counted in deferred_stats().
  void run_deferred_work(unsigned budget);
  DeferredStats deferred_stats() const;
  // Leaves mapped per level (index 1..3), counted by a walk of the roots.
  void leaves(uint64_t out[4]);
  uint64_t table_pages();

  // --- Changes and lookups on behalf of the guest (hv/hypercall.cpp, hv/exit_ept.cpp) ---
  // Apply a memslot change through the MMU's update path (publish, invalidation sequence,
  // leaf zap, TLB flush): when it returns ok, no vCPU can still reach the old range.
  mmu::MemslotError update_memslot(const mmu::MemslotOp& op);
  // Fast zap: invalidate every root. With `wait`, also run/await the teardown of the old ones.
  void invalidate_all_roots(bool wait);
  mmu::MmuStats stats();
  // The guest's MAXPHYADDR as the MMU was configured with it.
  unsigned guest_phys_bits() const { return mmu_->config().guest_phys_bits; }
  // The limit on the pages this VM's MMU may hold for its EPT (hv.pt-limit; 0: none): the
  // MMU's own account (mmu/page_account.h, MmuConfig::max_table_pages), which every VM uses,
  // limited or not. Set it before init(). The count and the refusals are in stats()
  // (table_pages_live, table_pages_limit, table_pages_refused).
  void set_page_limit(uint64_t pages) { page_limit_ = pages; }
  // A copy of slot `id` of address space 0, or false when there is none.
  bool find_slot(uint32_t id, mmu::Memslot* out);
  // The host-physical address of guest-physical [gpa, gpa + len) when that range lies inside
  // one slot of address space 0 (and the slot is writable if `write`), else 0. The slot is
  // looked up in the published set inside an epoch read-side section; the returned address
  // stays usable after the section ends only because every slot's backing is the VM's own
  // RAM pool, which lives as long as the VM (a concurrent slot change may make the answer
  // stale, never dangling).
  uint64_t translate(uint64_t gpa, uint64_t len, bool write);
  // Releases the vCPUs' roots, tears down every root and frees the memslots. No vCPU may run.
  void destroy();

 private:
  // Relaxed atomics: several CPUs run passes at once; only the totals and maxima matter.
  DeferredStats deferred_;
  uint64_t page_limit_ = 0;
  mmu::Memslots* memslots_ = nullptr;
  mmu::Mmu* mmu_ = nullptr;
  mmu::VcpuMmu* vcpus_[kMaxVcpus] = {};
  alignas(mmu::Memslots) unsigned char memslots_storage_[sizeof(mmu::Memslots)];
  alignas(mmu::Mmu) unsigned char mmu_storage_[sizeof(mmu::Mmu)];
  alignas(mmu::VcpuMmu) unsigned char vcpu_storage_[kMaxVcpus][sizeof(mmu::VcpuMmu)];
};

}  // namespace hv
