// The VM layer's narrow view of the EPT MMU: load a root for a vCPU, resolve an EPT violation,
// count leaves, tear everything down.
//
// TODO(lead): mmu::Mmu (mmu/mmu.h) has the real fault path (map/vcpu_load_root/count_leaves),
// but mmu::Memslots (memslot.h, which Mmu::lookup_slot needs) has not landed yet. Until it does,
// guest_mmu.cpp implements this interface with a small, single-lock stand-in that follows the
// same rules (largest leaf that slot alignment and backing allow; tables only from the fault
// path; no pre-built map). Switching to mmu::Mmu means: build an mmu::Memslots from `slots`,
// construct mmu::Mmu(platform(), epoch(), memslots, {tlb_tag = vm id, max_level}), and forward
// load_root -> vcpu_load_root, map -> map, leaves -> count_leaves, run_deferred_work ->
// run_deferred_work. Nothing outside guest_mmu.{h,cpp} has to change.
#pragma once

#include <stdint.h>

#include "arch/x86/spinlock.h"
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
const char* to_string(MapResult r);

class GuestMmu {
 public:
  static constexpr unsigned kMaxSlots = 8;

  // max_level: largest leaf (1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB). Returns nullptr or why not.
  const char* init(uint64_t vm_id, const RamSlot* slots, unsigned count, int max_level, unsigned guest_phys_bits);
  // The root table's physical address for `vcpu` (0 when out of memory).
  mmu::hpa_t load_root(unsigned vcpu);
  // Bumped whenever roots are replaced (the vCPU reloads its EPTP when it changes).
  uint64_t root_generation() const { return 0; }
  // Make `gfn` accessible for `access` (mmu::spte::Access bits).
  MapResult map(unsigned vcpu, mmu::gfn_t gfn, unsigned access);
  // Safe point before VM entry: bounded deferred work (teardown, epoch callbacks).
  void run_deferred_work(unsigned budget);
  // Leaves mapped per level (index 1..3).
  void leaves(uint64_t out[4]);
  uint64_t table_pages() const { return tables_; }
  // Frees every table (no vCPU may run on the root any more).
  void destroy();

 private:
  const RamSlot* find_slot(mmu::gfn_t gfn) const;
  int goal_level(const RamSlot& s, mmu::gfn_t gfn) const;
  void free_table(mmu::hpa_t table, int level);

  uint64_t vm_id_ = 0;
  RamSlot slots_[kMaxSlots] = {};
  unsigned slot_count_ = 0;
  int max_level_ = 1;
  mmu::gfn_t gfn_limit_ = 0;
  mmu::hpa_t root_ = 0;
  uint64_t tables_ = 0;
  uint64_t leaves_[4] = {};
  x86::SpinLock lock_;
};

}  // namespace hv
