// Stand-in implementation of GuestMmu (see the TODO in guest_mmu.h): one 4-level EPT root per
// VM, faults served under one spinlock. Entry encodings come from mmu/spte.h, so the tables it
// builds are the ones mmu::Mmu builds.
//
// Ordering with the hardware walker: a new table is zeroed (by the allocator) before the entry
// that links it is stored, and the leaf is stored last. x86 keeps stores in order, and the
// CPU's EPT walk after the VM entry that follows (VM entry is serializing) sees all of them, so
// no explicit barrier is needed between the stores and the walk.
#include "hv/guest_mmu.h"

#include "arch/x86/percpu.h"
#include "hv/mmu_platform.h"
#include "mmu/spte.h"

namespace hv {

using mmu::gfn_t;
using mmu::hpa_t;
using mmu::spte_t;
namespace spte = mmu::spte;

const char* to_string(MapResult r) {
  switch (r) {
    case MapResult::kFixed: return "fixed";
    case MapResult::kSpurious: return "spurious";
    case MapResult::kRetry: return "retry";
    case MapResult::kUnbacked: return "unbacked";
    case MapResult::kWriteProtected: return "write-protected";
    case MapResult::kBadGfn: return "bad gfn";
    case MapResult::kOutOfMemory: return "out of memory";
  }
  return "?";
}

const char* GuestMmu::init(uint64_t vm_id, const RamSlot* slots, unsigned count, int max_level,
                           unsigned guest_phys_bits) {
  if (count > kMaxSlots) return "too many memory slots";
  vm_id_ = vm_id;
  for (unsigned i = 0; i < count; i++) {
    const RamSlot& s = slots[i];
    if (!s.npages || (s.backing_hpa & (mmu::kPageSize - 1))) return "memory slot empty or backing misaligned";
    for (unsigned j = 0; j < i; j++)
      if (s.base_gfn < slots[j].base_gfn + slots[j].npages && slots[j].base_gfn < s.base_gfn + s.npages)
        return "memory slots overlap";
    slots_[i] = s;
  }
  slot_count_ = count;
  max_level_ = max_level < 1 ? 1 : (max_level > spte::kMaxHugeLevel ? spte::kMaxHugeLevel : max_level);
  gfn_limit_ = gfn_t{1} << (guest_phys_bits - mmu::kPageShift);
  return nullptr;
}

hpa_t GuestMmu::load_root(unsigned) {
  lock_.lock(x86::cpu_index());
  if (!root_) {
    root_ = platform().alloc_page();
    if (root_) tables_++;
  }
  const hpa_t r = root_;
  lock_.unlock();
  return r;
}

const RamSlot* GuestMmu::find_slot(gfn_t gfn) const {
  for (unsigned i = 0; i < slot_count_; i++)
    if (gfn >= slots_[i].base_gfn && gfn < slots_[i].base_gfn + slots_[i].npages) return &slots_[i];
  return nullptr;
}

// The largest level whose aligned span lies inside the slot and whose host frames are aligned
// the same way (guest and host offsets agree modulo the span).
int GuestMmu::goal_level(const RamSlot& s, gfn_t gfn) const {
  for (int level = max_level_; level > 1; level--) {
    const gfn_t base = spte::align_down(gfn, level);
    const uint64_t span = spte::pages_per_entry(level);
    if (base < s.base_gfn || base + span > s.base_gfn + s.npages) continue;
    const uint64_t host_frame = (s.backing_hpa >> mmu::kPageShift) + (base - s.base_gfn);
    if (host_frame % span == 0) return level;
  }
  return 1;
}

MapResult GuestMmu::map(unsigned, gfn_t gfn, unsigned access) {
  if (gfn >= gfn_limit_) return MapResult::kBadGfn;
  const RamSlot* slot = find_slot(gfn);
  if (!slot) return MapResult::kUnbacked;
  const int goal = goal_level(*slot, gfn);

  lock_.lock(x86::cpu_index());
  MapResult result = MapResult::kFixed;
  hpa_t table = root_;
  for (int level = 4; table; level--) {
    spte_t* entries = static_cast<spte_t*>(platform().phys_to_virt(table));
    spte_t* e = &entries[spte::index_of(gfn, level)];
    if (level == goal) {
      if (spte::is_present(*e)) {
        // Under one lock a leaf can only exist if it already grants everything (RWX).
        result = MapResult::kSpurious;
      } else {
        const gfn_t base = spte::align_down(gfn, level);
        const hpa_t hpa = slot->backing_hpa + ((base - slot->base_gfn) << mmu::kPageShift);
        *e = spte::make_leaf(hpa, level, spte::kAccRead | spte::kAccWrite | spte::kAccExec, true);
        leaves_[level]++;
      }
      break;
    }
    if (spte::is_leaf(*e, level)) {  // a huge leaf already covers gfn: nothing to do
      result = MapResult::kSpurious;
      break;
    }
    if (!spte::is_present(*e)) {
      const hpa_t child = platform().alloc_page();
      if (!child) {
        result = MapResult::kOutOfMemory;
        break;
      }
      tables_++;
      *e = spte::make_table(child);
    }
    table = spte::pfn_addr(*e);
  }
  lock_.unlock();
  (void)access;
  return result;
}

void GuestMmu::run_deferred_work(unsigned) {}

void GuestMmu::leaves(uint64_t out[4]) {
  for (int i = 0; i < 4; i++) out[i] = leaves_[i];
}

void GuestMmu::free_table(hpa_t table, int level) {
  spte_t* entries = static_cast<spte_t*>(platform().phys_to_virt(table));
  if (level > 1)
    for (unsigned i = 0; i < spte::kEntriesPerTable; i++)
      if (spte::is_table(entries[i], level)) free_table(spte::pfn_addr(entries[i]), level - 1);
  platform().free_page(table);
  tables_--;
}

void GuestMmu::destroy() {
  if (root_) free_table(root_, 4);
  root_ = 0;
}

}  // namespace hv
