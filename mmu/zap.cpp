// Leaf zaps of a gfn range, and the handling of tables that leave the tree.
//
// Lesson 4: a memslot change needs only the *leaves* of its range zapped. Paging structures do
// not point at guest memory, so empty tables may stay; the next fault reuses them (or replaces
// them by a huge leaf). A huge leaf that overlaps the range only partly is zapped whole: that
// over-zaps the part outside the range, which is correct, because the next fault there simply
// installs again what still belongs to a memslot.
#include "mmu/mmu.h"
#include "mmu/spte_ops.h"
#include "mmu/tdp_iter.h"

namespace mmu {

namespace {
// Entries visited between two looks at should_yield(): bounds the time the lock is held without
// asking, while keeping the (virtual) call off the per-entry path.
constexpr unsigned kYieldCheckInterval = 32;
}  // namespace

void Mmu::flush() {
  stats_.flushes.fetch_add(1, Order::relaxed);
  platform_.flush_remote_tlbs(config_.tlb_tag);
}

void Mmu::zap_range(unsigned as_id, gfn_t start, gfn_t end) {
  if (start >= end) return;
  stats_.zap_calls.fetch_add(1, Order::relaxed);
  bool flush_needed = false;
  {
    epoch_.assert_not_in_read_section();  // no waiting for the lock in a section
    WriteLockGuard guard(mmu_lock_);
    // Every root of the address space, valid or not: a vCPU may still run on an invalid root
    // until its next entry, so its leaves of the range must go too.
    for (Root* r = roots_.next(nullptr, as_id); r != nullptr; r = roots_.next(r, as_id)) {
      flush_needed |= zap_leafs_yield_safe(r, start, end);
    }
  }
  // The change is done only once no TLB can translate through a zapped leaf.
  if (flush_needed) flush();
}

// MMU lock: exclusive (dropped and retaken at yield points). Returns whether leaves were zapped
// that no flush has covered yet.
bool Mmu::zap_leafs_yield_safe(Root* root, gfn_t start, gfn_t end) {
  mmu_lock_.assert_held();
  bool flush_needed = false;
  unsigned since_check = 0;
  for (TdpIter it(platform_, root->table, root->level, start, end, 1); it.valid(); it.next()) {
    if (++since_check >= kYieldCheckInterval && it.may_yield()) {
      since_check = 0;
      if (platform_.should_yield()) {
        // Flush before others run: a fault that comes after us must not find a TLB that still
        // translates through what we zapped.
        if (flush_needed) flush();
        flush_needed = false;
        mmu_lock_.unlock();
        platform_.cpu_relax();
        epoch_.assert_not_in_read_section();  // no waiting for the lock in a section
        mmu_lock_.lock();
        it.mark_yielded();
        continue;
      }
    }
    const int level = it.level();
    const spte_t old = it.old_spte;
    if (!spte::is_leaf(old, level) && !spte::is_mmio(old)) continue;
    // Over-zap (lesson 4, see the top of this file): this leaf may reach outside [start, end).
    // Exchange, not store: the CPU may set A/D concurrently and we want the final value.
    const spte_t last = spte_exchange(it.sptep(), 0, level);
    it.old_spte = 0;
    if (spte::is_leaf(last, level)) {
      stats_.leaves[level].fetch_sub(1, Order::relaxed);
      stats_.zapped_leaves.fetch_add(1, Order::relaxed);
      flush_needed = true;
    }
  }
  return flush_needed;
}

// Chain a table that left the tree onto `dead`, through its entry 0 (the entry's old value was
// already read by the caller).
void Mmu::push_dead(hpa_t table, DeadTables& dead) {
  auto* t = static_cast<spte_t*>(platform_.phys_to_virt(table));
  spte_store(&t[0], spte::make_dead_link(dead.head), 0);
  dead.head = table;
  dead.count++;
}

// MMU lock: exclusive. `table` (at `level`) was unlinked by the caller; nobody else can write
// into it (faults hold the lock shared and re-walk from the root), so its entries are just read.
void Mmu::collect_dead_table(hpa_t table, int level, DeadTables& dead) {
  mmu_lock_.assert_held();
  auto* t = static_cast<spte_t*>(platform_.phys_to_virt(table));
  for (unsigned i = 0; i < spte::kEntriesPerTable; i++) {
    const spte_t s = spte_read(&t[i]);
    if (spte::is_table(s, level)) {
      collect_dead_table(spte::pfn_addr(s), level - 1, dead);
    } else if (spte::is_leaf(s, level)) {
      dead.leaves[level]++;
    }
  }
  push_dead(table, dead);
}

// MMU lock: shared. Like collect_dead_table(), but other CPUs may still be walking the subtree
// and CAS into it: each entry is taken with an exchange, which both returns its last value
// (a table linked, a leaf installed or A/D set just before) and makes every later CAS fail.
void Mmu::collect_dead_table_atomic(hpa_t table, int level, DeadTables& dead) {
  mmu_lock_.assert_held_shared();
  auto* t = static_cast<spte_t*>(platform_.phys_to_virt(table));
  for (unsigned i = 0; i < spte::kEntriesPerTable; i++) {
    // A FROZEN entry belongs to a CPU replacing it; it owns what was below and will find its CAS
    // from FROZEN failing, so it does not resurrect anything in this dead table.
    const spte_t s = spte_exchange(&t[i], spte::make_dead_link(0), level);
    if (spte::is_table(s, level)) {
      collect_dead_table_atomic(spte::pfn_addr(s), level - 1, dead);
    } else if (spte::is_leaf(s, level)) {
      dead.leaves[level]++;
    }
  }
  push_dead(table, dead);
}

// Hand dead tables to the epoch. The caller has flushed the TLBs since they were unlinked, so
// after the grace period neither a CPU nor a TLB can reach them (issue #3, item 8). Pages the
// epoch cannot take now (no memory for its tracking page) wait in the limbo list.
void Mmu::retire_dead(DeadTables& dead) {
  for (int l = 1; l <= 3; l++) {
    if (dead.leaves[l]) stats_.leaves[l].fetch_sub(dead.leaves[l], Order::relaxed);
    dead.leaves[l] = 0;
  }
  hpa_t page = dead.head;
  while (page != 0) {
    auto* t = static_cast<spte_t*>(platform_.phys_to_virt(page));
    // Read the link first: once retired, the page may be freed after the grace period.
    const hpa_t next = spte::dead_link_next(spte_read(&t[0]));
    stats_.tables_live.fetch_sub(1, Order::relaxed);
    // The epoch credits the page to our account when it finally frees it.
    if (!epoch_.retire_page(page, &account_)) {
      SpinLockGuard g(limbo_lock_);
      spte_store(&t[0], spte::make_dead_link(limbo_.head), 0);
      limbo_.head = page;
      limbo_.count++;
      stats_.limbo_pages.fetch_add(1, Order::relaxed);
    }
    page = next;
  }
  dead.head = 0;
  dead.count = 0;
}

void Mmu::retry_limbo() {
  DeadTables pending;
  {
    SpinLockGuard g(limbo_lock_);
    if (limbo_.head == 0) return;
    pending = limbo_;
    limbo_ = DeadTables{};
  }
  stats_.limbo_pages.fetch_sub(pending.count, Order::relaxed);
  stats_.tables_live.fetch_add(pending.count, Order::relaxed);  // retire_dead counts them again
  retire_dead(pending);
}

}  // namespace mmu
