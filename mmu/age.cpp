// Aging: test-and-clear Accessed over a range, and leaf counts by walking the tree.
//
// Both run without the MMU lock. Lesson 1: the epoch read section is held per root, not across
// all roots, so a grace period (and the reclamation of tables other CPUs unlinked) can complete
// between two roots. Inside a section every table we reach stays allocated (tables are retired
// through the epoch only after they left the tree), though it may be dead: the iterator re-reads
// each link before descending, dead tables hold only non-present entries, and the Accessed bit
// is cleared with an atomic AND, so a racing fault's CAS or the CPU's own A/D update is never
// lost (at worst a page that was just installed looks old once).
#include "mmu/mmu.h"
#include "mmu/spte_ops.h"
#include "mmu/tdp_iter.h"

namespace mmu {

uint64_t Mmu::age_range(unsigned as_id, gfn_t start, gfn_t end) {
  uint64_t young = 0;
  // The reference taken by next() keeps the Root object in the list between sections.
  for (Root* r = roots_.next(nullptr, as_id); r != nullptr; r = roots_.next(r, as_id)) {
    EpochReadGuard section(epoch_);
    for (TdpIter it(platform_, r->table, r->level, start, end, 1); it.valid(); it.next()) {
      const int level = it.level();
      if (!spte::is_leaf(it.old_spte, level) || !spte::is_accessed(it.old_spte)) continue;
      // The CPU sets A again on its next use of the translation only if it walks the tables,
      // i.e. after the TLB entry is gone; like KVM we do not flush for aging (a stale TLB entry
      // only makes the page look older than it is).
      const spte_t before = spte_clear_bits(it.sptep(), spte::kAccessed, level);
      if (spte::is_leaf(before, level) && spte::is_accessed(before)) young++;
    }
  }
  return young;
}

void Mmu::count_leaves(unsigned as_id, uint64_t out[4]) {
  for (int l = 0; l < 4; l++) out[l] = 0;
  for (Root* r = roots_.next(nullptr, as_id); r != nullptr; r = roots_.next(r, as_id)) {
    EpochReadGuard section(epoch_);
    for (TdpIter it(platform_, r->table, r->level, 0, ~gfn_t{0}, 1); it.valid(); it.next()) {
      if (spte::is_leaf(it.old_spte, it.level())) out[it.level()]++;
    }
  }
}

}  // namespace mmu
