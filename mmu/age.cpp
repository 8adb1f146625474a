// Aging: test-and-clear Accessed over a range, and leaf counts by walking the tree.
//
// Both run without the MMU lock. Rule 1: the epoch read section is held per root, not across
// all roots, so a grace period (and the reclamation of tables other CPUs unlinked) can complete
// between two roots; and inside a root it is left every kSectionEntries entries, so a walk over
// a big tree (a GiB of 4 KiB leaves is 262144 entries) never holds one section for long either.
// Inside a section every table we reach stays allocated (tables are retired through the epoch
// only after they left the tree), though it may be dead: the iterator re-reads each link before
// descending, dead tables hold only non-present entries, and the Accessed bit is cleared with
// an atomic AND, so a racing fault's CAS or the CPU's own A/D update is never lost (at worst a
// page that was just installed looks old once). After leaving a section a walk may not use a
// table pointer from before it (epoch.h): it restarts from the root at the entry it was about
// to process (TdpIter::mark_yielded), so nothing is visited twice and nothing skipped, up to
// the changes other CPUs make meanwhile (a walk without the lock is never a snapshot).
// "Rule N": the five design rules of the MMU, docs/mmu.md §10.
#include "mmu/mmu.h"
#include "mmu/spte_ops.h"
#include "mmu/tdp_iter.h"

namespace mmu {

namespace {
// Entries a lockless walk visits inside one epoch read section. The walk holds no lock, so a
// section is the only thing it holds up (every grace period, i.e. the reclamation of every
// VM's tables); a table's worth keeps each section short, while the restart from the root after
// each one costs a handful of reads.
constexpr unsigned kSectionEntries = spte::kEntriesPerTable;
}  // namespace

uint64_t Mmu::age_range(unsigned as_id, gfn_t start, gfn_t end) {
  uint64_t young = 0;
  // The walk's reference keeps the Root object in the list between our sections.
  for (Root* r : roots_lockless_yield_safe(as_id)) {
    epoch_.read_lock();
    unsigned visited = 0;
    for (TdpIter it(platform_, r->table, r->level, start, end, 1); it.valid(); it.next()) {
      if (++visited >= kSectionEntries && it.may_yield()) {
        visited = 0;
        epoch_.read_unlock();  // a grace period may end here: restart from the root
        if (platform_.should_yield()) platform_.cpu_relax();
        epoch_.read_lock();
        it.mark_yielded();
        continue;
      }
      const int level = it.level();
      if (!spte::is_leaf(it.old_spte, level) || !spte::is_accessed(it.old_spte)) continue;
      // The CPU sets A again on its next use of the translation only if it walks the tables,
      // i.e. after the TLB entry is gone; like KVM we do not flush for aging (a stale TLB entry
      // only makes the page look older than it is).
      const spte_t before = spte_clear_bits(it.sptep(), spte::kAccessed, level);
      if (spte::is_leaf(before, level) && spte::is_accessed(before)) young++;
    }
    epoch_.read_unlock();
  }
  return young;
}

// The leaves of every root of `as_id`, invalid ones included (they still count in
// stats().leaves until their teardown removes them). Yield points: between roots (outside any
// section, as aging) and every kSectionEntries entries inside a root, so with N roots of
// any size no section lasts longer than about kSectionEntries entries. At each one the
// platform may run what waits for this CPU (cpu_relax() answers TLB-flush requests in the
// kernel). The total still grows with the trees: that is why a hypercall reads the counters.
void Mmu::count_leaves(unsigned as_id, uint64_t out[4]) {
  for (int l = 0; l < 4; l++) out[l] = 0;
  for (Root* r : roots_lockless_yield_safe(as_id)) {
    if (platform_.should_yield()) platform_.cpu_relax();
    count_root_leaves(r, out);
  }
}

// Lockless (the caller holds a reference on `root`); epoch sections of bounded length.
void Mmu::count_root_leaves(Root* root, uint64_t out[4]) {
  epoch_.read_lock();
  unsigned visited = 0;
  for (TdpIter it(platform_, root->table, root->level, 0, ~gfn_t{0}, 1); it.valid(); it.next()) {
    if (++visited >= kSectionEntries && it.may_yield()) {
      visited = 0;
      // Leave the section: tables we point into may be freed once we are out, so the walk
      // restarts from the root at this entry (not counted yet) instead of going on from here.
      epoch_.read_unlock();
      if (platform_.should_yield()) platform_.cpu_relax();
      epoch_.read_lock();
      it.mark_yielded();
      continue;
    }
    if (spte::is_leaf(it.old_spte, it.level())) out[it.level()]++;
  }
  epoch_.read_unlock();
}

}  // namespace mmu
