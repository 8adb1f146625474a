// Leaf zaps of a gfn range, and the handling of tables that leave the tree.
//
// Rule 4: a memslot change needs only the *leaves* of its range zapped. Paging structures do
// not point at guest memory, so empty tables may stay; the next fault reuses them (or replaces
// them by a huge leaf). A huge leaf that overlaps the range only partly is zapped whole: that
// over-zaps the part outside the range, which is correct, because the next fault there simply
// installs again what still belongs to a memslot.
// "Rule N": the five design rules of the MMU, docs/mmu.md §10.
#include "mmu/mmu.h"
#include "mmu/spte_ops.h"
#include "mmu/tdp_iter.h"

namespace mmu {

namespace {
// Entries visited between two looks at should_yield(): bounds the time the lock is held without
// asking, while keeping the (virtual) call off the per-entry path.
constexpr unsigned kYieldCheckInterval = 32;
}  // namespace

// TLB flushes by generation
// -------------------------
// The problem: an unlinker that drops the MMU lock before its flush leaves a
// window in which another caller takes the lock, finds nothing left to zap, and used to return
// without a flush while a CPU could still translate through what the first one removed.
//
// The protocol:
//   * Unlinker U: clears SPTEs (atomic exchanges) under the MMU lock, then, still under the
//     lock, note_unlinks(): g_U = ++unlink_gen_ (release). Anyone that unlinks and drops the
//     lock before its flush completes must do this. (replace_table_with_leaf_atomic() in
//     fault.cpp flushes before it drops its lock, so it needs no generation.)
//   * Flusher F, in flush(): g = unlink_gen_ (acquire), then Platform::flush_remote_tlbs(),
//     then flushed_gen_ = max(flushed_gen_, g) (release CAS).
//   * Caller Z that must not return before what it depends on is flushed (zap_range, memslot
//     updates through it, the end of a root's teardown): reads need = unlink_gen_ under the
//     MMU lock, and after dropping the lock calls flush_covering(need): if flushed_gen_
//     (acquire) >= need a completed flush covers it, else it flushes itself.
//   * Dead tables are retired to the epoch only once flushed_gen_ covers their generation.
// Barrier pairings:
//   (a) U's release fetch_add <-> F's acquire load of unlink_gen_: every writer of unlink_gen_
//       is an RMW, so F's load reads from the release sequence of U's increment whenever it
//       sees a value >= g_U; U's SPTE clears then happen before F calls the platform, whose
//       contract covers every entry cleared before the call.
//   (b) F's release CAS of flushed_gen_ <-> Z's acquire load in flush_covering(): Z sees a
//       value >= need only from a flusher whose flush (covering >= need) had completed; the
//       CAS-max writers are RMWs, so a later, larger value still carries that ordering.
//   (c) The MMU lock orders U's increment before Z's read of `need`: U increments before it
//       unlocks (release), Z reads after it locks (acquire), so `need` >= g_U for every U
//       that held the lock before Z; relaxed loads suffice under the lock.
//   (d) A dead table pushed to the pending list by one CPU and retired by another: the list's
//       SpinLock (release at push, acquire at take) makes the unlink happen before the
//       retiring CPU's epoch stamp, which is all condition C2 of mmu/epoch.cpp needs.
// Why a generation rather than "flush before unlocking": teardown can then drop the exclusive
// lock after every short step and still flush once per batch of tables, and a flush is never
// issued with the MMU lock held exclusively (the other vCPUs' faults would wait for the IPIs).
void Mmu::flush() {
  // (a): acquire, before the flush is issued.
  const uint64_t covers = unlink_gen_.load(Order::acquire);
  stats_.flushes.fetch_add(1, Order::relaxed);
  platform_.flush_remote_tlbs(config_.tlb_tag);
  // (b): release, after the flush completed. A failed CAS reloads `cur`; stop once someone
  // recorded a flush that covers at least as much.
  uint64_t cur = flushed_gen_.load(Order::relaxed);
  while (cur < covers && !flushed_gen_.compare_exchange(cur, covers, Order::release)) {
  }
}

uint64_t Mmu::note_unlinks() {
  assert_lock_held_shared();
  // (a), (c): release, after the SPTE exchanges it stands for.
  return unlink_gen_.fetch_add(1, Order::release) + 1;
}

uint64_t Mmu::unlink_generation() {
  assert_lock_held_shared();
  // (c): the lock's acquire already ordered every increment made before we took it.
  return unlink_gen_.load(Order::relaxed);
}

void Mmu::flush_covering(uint64_t gen) {
  // (b): acquire pairs with the release CAS at the end of flush().
  if (flushed_gen_.load(Order::acquire) >= gen) {
    stats_.flushes_avoided.fetch_add(1, Order::relaxed);
    return;
  }
  // Not covered (or a flush that will cover it is still in progress on another CPU): flush
  // ourselves rather than wait for it. Flushes are idempotent; waiting would tie this CPU to
  // another one's IPI round for no gain.
  flush();
}

void Mmu::zap_range(unsigned as_id, gfn_t start, gfn_t end) {
  if (start >= end) return;
  stats_.zap_calls.fetch_add(1, Order::relaxed);
  const uint64_t t0 = platform_.timestamp();  // for Platform::trace_zap_range
  uint64_t need;
  {
    epoch_.assert_not_in_read_section();  // no waiting for the lock in a section
    WriteLockGuard guard(mmu_lock_);
    // Every root of the address space, valid or not: a vCPU may still run on an invalid root
    // until its next entry, so its leaves of the range must go too.
    for (Root* r : roots_exclusive(as_id)) zap_leafs_yield_safe(r, start, end);
    // Our own zaps and every unlink made before we (last) took the lock, by anyone: a
    // teardown step or another zap may have removed the leaves we came for and still be on
    // its way to the flush.
    need = unlink_generation();
  }
  // The change is done only once no TLB can translate through a removed leaf. Outside the
  // lock: the other vCPUs' faults need not wait for the IPIs.
  flush_covering(need);
  // Our flush may also have covered the teardown's waiting tables: don't keep them.
  retire_pending_if_flushed();
  platform_.trace_zap_range(config_.tlb_tag, as_id, start, end, t0);
}

// MMU lock: exclusive. Zap leaf `old` at `sptep`; returns the entry's last value. An exchange
// (a LOCKed instruction: with a plain walk it is most of the zap's cost) only where the value
// may still change under us in a way anyone uses: a writable leaf whose D is still clear may get
// D from a CPU writing through it, and a D-logged slot needs that D (`keep_d`). Nothing else
// changes the entry: software writers other than lockless aging (which only clears A with an
// atomic AND, so it cannot revive a cleared entry) hold the MMU lock; the CPU sets only A and D,
// with a locked update that does not revive a cleared entry either, and not D in a read-only
// entry. A lost A is harmless (the leaf is gone, nobody asks its age), and so is a lost D when
// `keep_d` is false: `keep_d` is read under the lock, and a dirty-log start that this read missed
// has not yet run its own pass under the lock (it counts its slot before it takes the lock) and
// begins with every page marked dirty, which covers any write before its pass. (KVM's TDP MMU
// likewise writes entries without "volatile" bits with a plain store.)
static inline spte_t zap_leaf_spte(spte_t* sptep, spte_t old, int level, bool keep_d) {
  if (keep_d && (old & spte::kWrite) && !(old & spte::kDirty)) return spte_exchange(sptep, 0, level);
  spte_store(sptep, 0, level);
  return old;
}

// MMU lock: exclusive (dropped and retaken at yield points). Notes its zaps (note_unlinks)
// before every unlock, so whoever takes the lock meanwhile flushes for them if it must return.
// The statistics are added per batch (at each yield and at the end), not per leaf: a shared
// atomic add per leaf cost as much as the zap itself.
void Mmu::zap_leafs_yield_safe(Root* root, gfn_t start, gfn_t end) {
  mmu_lock_.assert_held();
  bool unnoted = false;
  unsigned since_check = 0;
  uint64_t zapped[4] = {};  // leaves zapped by level since the statistics were last updated
  // Whether a leaf's final D matters (zap_leaf_spte); read again whenever the lock is retaken.
  bool keep_d = dirty_d_slots_.load(Order::relaxed) != 0;
  const auto publish_counts = [&] {
    uint64_t total = 0;
    for (int l = 1; l <= 3; l++) {
      if (zapped[l] == 0) continue;
      stats_.leaves[l].fetch_sub(zapped[l], Order::relaxed);
      total += zapped[l];
      zapped[l] = 0;
    }
    if (total) stats_.zapped_leaves.fetch_add(total, Order::relaxed);
  };
  for (TdpIter it(platform_, root->table, root->level, start, end, 1); it.valid(); it.next()) {
    if (++since_check >= kYieldCheckInterval && it.may_yield()) {
      since_check = 0;
      if (platform_.should_yield()) {
        // No flush here: a fault that runs meanwhile may reinstall a leaf we removed only if
        // its memslot still maps it (a memslot change holds faults off its range with
        // invalidate_begin()), i.e. with the same translation; and a zap that runs meanwhile
        // finds our generation and flushes for it.
        if (unnoted) note_unlinks();
        unnoted = false;
        publish_counts();
        mmu_lock_.unlock();
        platform_.cpu_relax();
        epoch_.assert_not_in_read_section();  // no waiting for the lock in a section
        mmu_lock_.lock();
        keep_d = dirty_d_slots_.load(Order::relaxed) != 0;
        it.mark_yielded();
        continue;
      }
    }
    const int level = it.level();
    const spte_t old = it.old_spte;
    if (!spte::is_leaf(old, level)) {
      if (spte::is_mmio(old)) {
        spte_store(it.sptep(), 0, level);
        it.old_spte = 0;
      } else if (level == 2 && spte::is_table(old, level)) {
        // A table of 4 KiB entries. Start loading the next one (the next entry's table) while
        // this one is zapped.
        const unsigned idx = spte::index_of(it.gfn(), level);
        if (idx + 1 < spte::kEntriesPerTable) {
          const spte_t nxt = spte_read(it.sptep() + 1);
          if (spte::is_table(nxt, level)) __builtin_prefetch(platform_.table_va(spte::pfn_addr(nxt)));
        }
        if (it.covers_entry()) {
          // All of it is in the range: zap its 512 entries in one loop instead of stepping the
          // iterator through each (the same per-entry work, without the walk's bookkeeping).
          // The yield check counts them, so the lock is still given up between tables.
          auto* t = static_cast<spte_t*>(platform_.table_va(spte::pfn_addr(old)));
          const gfn_t base = it.gfn();
          for (unsigned i = 0; i < spte::kEntriesPerTable; i++) {
            const spte_t e = spte_read(&t[i]);
            if (e == 0) continue;
            if (spte::is_leaf(e, 1)) {
              const spte_t last = zap_leaf_spte(&t[i], e, 1, keep_d);
              zapped[1]++;
              unnoted = true;
              if (MMU_UNLIKELY(last & spte::kDirty) && keep_d) dirty_log_dropped(root->as_id, base + i, 1);
            } else if (spte::is_mmio(e)) {
              spte_store(&t[i], 0, 1);
            }
          }
          since_check += spte::kEntriesPerTable;
          it.skip_children();
        }
      }
      continue;
    }
    // Over-zap (rule 4, see the top of this file): this leaf may reach outside [start, end).
    const spte_t last = zap_leaf_spte(it.sptep(), old, level, keep_d);
    it.old_spte = 0;
    zapped[level]++;
    unnoted = true;
    // The last value has the final D: a logged slot keeps it (dirty_log.cpp).
    if (MMU_UNLIKELY(last & spte::kDirty) && keep_d)
      dirty_log_dropped(root->as_id, it.gfn(), level);
  }
  publish_counts();
  if (unnoted) note_unlinks();
}

// Chain a table that left the tree onto `dead`, through its entry 0 (the entry's old value was
// already read by the caller).
// The table is out of the tree from now on: it no longer counts in tables_live.
void Mmu::push_dead(hpa_t table, DeadTables& dead) {
  auto* t = static_cast<spte_t*>(platform_.phys_to_virt(table));
  spte_store(&t[0], spte::make_dead_link(dead.head), 0);
  if (dead.head == 0) dead.tail = table;
  dead.head = table;
  dead.count++;
  stats_.tables_live.fetch_sub(1, Order::relaxed);
}

// MMU lock: shared (a teardown step; exclusive would do too). `table` (at `level`) was unlinked
// by the caller from an invalid root past its teardown fence (teardown.cpp), so no software
// writer but the caller can reach it: faults, pre-faults and splits check root->invalid under
// the lock and the fence waited for every hold that had not; zaps and dirty-log walks hold the
// lock exclusively; lockless aging only clears A with an atomic AND, and the CPU only sets A/D,
// neither of which the collection reads. So its entries are just read, not exchanged.
// Returns the entries visited, the tables below included (teardown's units).
unsigned Mmu::collect_dead_table(hpa_t table, int level, DeadTables& dead) {
  assert_lock_held_shared();
  auto* t = static_cast<spte_t*>(platform_.phys_to_virt(table));
  unsigned visited = spte::kEntriesPerTable;
  for (unsigned i = 0; i < spte::kEntriesPerTable; i++) {
    const spte_t s = spte_read(&t[i]);
    if (spte::is_table(s, level)) {
      visited += collect_dead_table(spte::pfn_addr(s), level - 1, dead);
    } else if (spte::is_leaf(s, level)) {
      dead.leaves[level]++;
    }
  }
  push_dead(table, dead);
  return visited;
}

// MMU lock: shared. Like collect_dead_table(), but other CPUs may still be walking the subtree
// and CAS into it: each entry is taken with an exchange, which both returns its last value
// (a table linked, a leaf installed or A/D set just before) and makes every later CAS fail.
void Mmu::collect_dead_table_atomic(hpa_t table, int level, DeadTables& dead) {
  assert_lock_held_shared();
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
// after the grace period neither a CPU nor a TLB can reach them (docs/mmu.md §7). Pages the
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
    // The epoch credits the page to our account when it finally frees it.
    if (!epoch_.retire_page(page, &account_)) {
      SpinLockGuard g(limbo_lock_);
      spte_store(&t[0], spte::make_dead_link(limbo_.head), 0);
      if (limbo_.head == 0) limbo_.tail = page;
      limbo_.head = page;
      limbo_.count++;
      stats_.limbo_pages.fetch_add(1, Order::relaxed);
    }
    page = next;
  }
  dead = DeadTables{};
}

void Mmu::retry_limbo() {
  // Asked at every safe point: nothing in limbo (the usual case) is one relaxed load of a
  // counter kept with the list, not a lock.
  if (stats_.limbo_pages.load(Order::relaxed) == 0) return;
  DeadTables pending;
  {
    SpinLockGuard g(limbo_lock_);
    if (limbo_.head == 0) return;
    pending = limbo_;
    limbo_ = DeadTables{};
  }
  stats_.limbo_pages.fetch_sub(pending.count, Order::relaxed);
  retire_dead(pending);
}

// Pending dead tables (teardown's batches): see "TLB flushes by generation" above.
void Mmu::defer_dead(DeadTables& dead, uint64_t gen) {
  // The leaves they held are gone from the tree now (and so are the leaves a teardown step
  // zapped one by one, counted here too, even when the step unlinked no table).
  for (int l = 1; l <= 3; l++) {
    if (dead.leaves[l]) stats_.leaves[l].fetch_sub(dead.leaves[l], Order::relaxed);
    dead.leaves[l] = 0;
  }
  if (dead.head == 0) return;
  bool full;
  {
    // (d): release at unlock publishes the chain (and orders its unlinks) for the CPU that
    // takes the list.
    SpinLockGuard g(pending_lock_);
    if (pending_.head != 0) {
      // Append the list behind our chain: its first table's link points to the list's head.
      auto* t = static_cast<spte_t*>(platform_.phys_to_virt(dead.tail));
      spte_store(&t[0], spte::make_dead_link(pending_.head), 0);
    } else {
      pending_.tail = dead.tail;
    }
    pending_.head = dead.head;
    pending_.count += dead.count;
    if (gen > pending_gen_) pending_gen_ = gen;
    full = pending_.count >= pending_cap_;
    stats_.dead_tables_pending.store(pending_.count, Order::relaxed);
  }
  dead = DeadTables{};
  if (full) flush_pending();
}

void Mmu::flush_pending() {
  DeadTables batch;
  uint64_t gen;
  {
    // (d): acquire pairs with the release of defer_dead()'s unlock.
    SpinLockGuard g(pending_lock_);
    batch = pending_;
    gen = pending_gen_;
    pending_ = DeadTables{};
    stats_.dead_tables_pending.store(0, Order::relaxed);
  }
  if (batch.head == 0) return;
  // One flush for the whole batch (none if another CPU's completed flush covers it).
  flush_covering(gen);
  retire_dead(batch);
}

void Mmu::retire_pending_if_flushed() {
  DeadTables batch;
  {
    SpinLockGuard g(pending_lock_);
    // (b): acquire, as in flush_covering(): the covering flush completed before we retire.
    if (pending_.head == 0 || flushed_gen_.load(Order::acquire) < pending_gen_) return;
    batch = pending_;
    pending_ = DeadTables{};
    stats_.dead_tables_pending.store(0, Order::relaxed);
  }
  retire_dead(batch);
}

}  // namespace mmu
