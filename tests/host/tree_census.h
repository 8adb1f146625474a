// Test helper: an independent count of what the MMU's trees hold, to compare with its counters.
//
// census() walks every root of an Mmu that is not torn down yet (every address space, valid or
// invalid) with plain recursion over the table pages (not the MMU's iterator), and counts
// leaves per level, links to lower tables, and entries that must not be reachable when no MMU
// operation is in flight: FROZEN (someone is replacing the entry) and dead links (entry 0 of an
// unlinked table). Call it only at quiescent points: no fault, zap, split, teardown step or
// memslot update running (lockless aging and "CPU" A/D updates may run: they change no count).
#pragma once

#include <cstdint>
#include <string>

#include "mmu/mmu.h"
#include "mmu/spte.h"

namespace hvtest {

struct TreeCensus {
  uint64_t leaves[4] = {};
  uint64_t tables = 0;      // links to lower tables (the counter tables_live counts them)
  uint64_t frozen = 0;      // FROZEN entries reachable from a root
  uint64_t dead_links = 0;  // dead-table links reachable from a root
  uint64_t roots = 0;

  // "" when the MMU's counters match this census and nothing transient is reachable.
  std::string compare(const mmu::MmuStats& s) const {
    std::string e;
    for (int l = 1; l <= 3; l++) {
      if (s.leaves[l] != leaves[l]) {
        e += "leaves[" + std::to_string(l) + "] counter " + std::to_string(s.leaves[l]) + " != walk " +
             std::to_string(leaves[l]) + "; ";
      }
    }
    if (s.tables_live != tables) {
      e += "tables_live counter " + std::to_string(s.tables_live) + " != walk " + std::to_string(tables) + "; ";
    }
    if (frozen) e += std::to_string(frozen) + " FROZEN entries reachable; ";
    if (dead_links) e += std::to_string(dead_links) + " dead links reachable; ";
    return e;
  }
};

inline void census_table(mmu::Platform& p, const mmu::spte_t* t, int level, TreeCensus& c) {
  using namespace mmu;
  for (unsigned i = 0; i < spte::kEntriesPerTable; i++) {
    const spte_t s = __atomic_load_n(&t[i], __ATOMIC_ACQUIRE);
    if (spte::is_frozen(s)) {
      c.frozen++;
    } else if (!spte::is_present(s) && (s & ~spte::kPfnMask) == spte::kFrozenMark) {
      c.dead_links++;
    } else if (spte::is_leaf(s, level)) {
      c.leaves[level]++;
    } else if (spte::is_table(s, level)) {
      c.tables++;
      census_table(p, static_cast<const spte_t*>(p.phys_to_virt(spte::pfn_addr(s))), level - 1, c);
    }
  }
}

inline TreeCensus census(mmu::Platform& p, mmu::Mmu& m) {
  TreeCensus c;
  for (mmu::Root* r = m.roots().next(nullptr, mmu::Roots::kAnyAs); r;
       r = m.roots().next(r, mmu::Roots::kAnyAs)) {
    c.roots++;
    census_table(p, r->table, r->level, c);
  }
  return c;
}

// Mmu::count_leaves() summed over `address_spaces`: the MMU's own walk.
inline void count_all_leaves(mmu::Mmu& m, unsigned address_spaces, uint64_t out[4]) {
  for (int l = 0; l < 4; l++) out[l] = 0;
  for (unsigned as = 0; as < address_spaces; as++) {
    uint64_t n[4];
    m.count_leaves(as, n);
    for (int l = 0; l < 4; l++) out[l] += n[l];
  }
}

}  // namespace hvtest
