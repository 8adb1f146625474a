// The fault path: map(vcpu, gfn, access), run for an EPT violation.
//
// Outline: memslot lookup and level choice without any lock -> page cache topped up -> MMU lock
// shared -> check the root and the invalidation sequence -> epoch read section -> walk down with
// the iterator, linking missing tables (CAS), splitting a huge leaf that is in the way (CAS),
// and installing the leaf (CAS). Every CAS that loses a race re-reads the entry and decides
// again, or reports `retry`; nothing a guest can pass (any gfn, any access) can crash it.
#include "mmu/dirty_ring.h"
#include "mmu/mmu.h"
#include "mmu/spte_ops.h"
#include "mmu/tdp_iter.h"

namespace mmu {

const char* to_string(FaultOutcome o) {
  switch (o) {
    case FaultOutcome::fixed: return "fixed";
    case FaultOutcome::spurious: return "spurious";
    case FaultOutcome::retry: return "retry";
    case FaultOutcome::unbacked: return "unbacked";
    case FaultOutcome::write_protected: return "write_protected";
    case FaultOutcome::bad_gfn: return "bad_gfn";
    case FaultOutcome::out_of_memory: return "out_of_memory";
    case FaultOutcome::kCount: break;
  }
  return "?";
}

namespace {
// Dirty logging by write protection: the fault just made `gfn` writable (CAS above). The bit is
// set *after* W, still under the MMU lock held shared: a harvest clears W under the lock held
// exclusively, so it never sees the W without the bit (dirty_log.cpp has the whole argument).
// With a dirty ring the vCPU also pushes the page (after the bit: the bitmap is the guarantee,
// the ring a copy for its consumer; a full ring drops the entry, the bit stays).
void log_write(const VcpuMmu& v, const SlotView& slot, gfn_t gfn) {
  slot.dirty_log->set(gfn - slot.base_gfn);
  if (DirtyRing* ring = v.dirty_ring()) ring->push(slot.slot_id, slot.as_id, gfn - slot.base_gfn);
}
bool leaf_allows(spte_t leaf, unsigned access) { return (spte::leaf_access(leaf) & access) == access; }
// An entry the fault path may overwrite: empty, or a (possibly stale) MMIO marker. Any other
// non-present value is FROZEN or a dead table's link: another CPU owns it, so retry.
bool installable(spte_t s) { return s == 0 || spte::is_mmio(s); }
}  // namespace

// The largest level whose whole frame lies inside the slot, with guest and host addresses equally
// aligned (a huge leaf maps one contiguous, aligned host range), capped by the backing's page
// size and the per-VM maximum.
int Mmu::goal_level(const SlotView& slot, gfn_t gfn) const {
  // A logged slot is mapped with 4 KiB leaves only: a page is the unit of the dirty log.
  if (MMU_UNLIKELY(slot.dirty_log != nullptr)) return 1;
  int level = max_level_.load(Order::relaxed);
  if (slot.max_level < level) level = slot.max_level;
  if (level > spte::kMaxHugeLevel) level = spte::kMaxHugeLevel;
  for (; level > 1; level--) {
    const gfn_t base = spte::align_down(gfn, level);
    const uint64_t span = spte::pages_per_entry(level);
    if (base < slot.base_gfn || base + span > slot.base_gfn + slot.npages) continue;
    const uint64_t host_frame = (slot.backing_hpa >> kPageShift) + (base - slot.base_gfn);
    if (host_frame % span == 0) return level;
  }
  return 1;
}

FaultOutcome Mmu::map(VcpuMmu& v, gfn_t gfn, unsigned access) {
  FaultOutcome outcome;
  // Once per fault: the lock's reader indicator and the statistics are this CPU's.
  const unsigned cpu = platform_.cpu_id();
  Root* const root = v.root_;
  access &= spte::kAccRead | spte::kAccWrite | spte::kAccExec;
  if (gfn >= gfn_limit_) {
    outcome = FaultOutcome::bad_gfn;
  } else if (root == nullptr) {
    outcome = FaultOutcome::retry;  // no root loaded: vcpu_load_root() before entering
  } else {
    // Snapshot the invalidation sequence *before* looking at the memslots. Acquire pairs with
    // the release increment in invalidate_end(): a fault that sees the sequence of a finished
    // update also sees the memslot set it published.
    const uint64_t seq = invalidate_seq_.load(Order::acquire);
    SlotView slot;
    // A slot copied under the current memslot generation is as good as a lookup now; races
    // with an update are caught by the sequence check under the lock, as for a lookup.
    if (!lookup_slot_vcpu(v, gfn, &slot)) {
      outcome = FaultOutcome::unbacked;
    } else if ((access & spte::kAccWrite) && slot.read_only) {
      outcome = FaultOutcome::write_protected;
    } else {
      const int goal = goal_level(slot, gfn);
      // Pages for the walk are taken before the lock. A partial top-up is not an error yet:
      // only a walk that really needs a missing page reports out_of_memory.
      v.cache_.topup(platform_, account_, static_cast<unsigned>(config_.root_level));
      // A CPU must never wait for the MMU lock inside an epoch section: a writer holding it may
      // be waiting in synchronize() for that very section (see mmu/epoch.h).
      epoch_.assert_not_in_read_section(cpu);
      PerCpuReadGuard guard(mmu_lock_, cpu);
      // The whole frame the leaf will map must be clear of invalidations, not just `gfn`: a huge
      // leaf for a gfn outside the range may still reach into it.
      const gfn_t frame = spte::align_down(gfn, goal);
      if (root->invalid.load(Order::acquire) ||
          invalidate_retry(cpu, seq, frame, frame + spte::pages_per_entry(goal))) {
        outcome = FaultOutcome::retry;
      } else {
        // Tables may be unlinked by other CPUs holding the lock shared (replace_table_...):
        // the section keeps every table we may still point into alive.
        EpochReadGuard section(epoch_, cpu);
        outcome = map_locked(v, cpu, gfn, access, slot, goal, config_.fault_around);
      }
    }
  }
  count(cpu, kHotFaults + static_cast<unsigned>(outcome));
  return outcome;
}

// MMU lock: held shared (the CAS protocol makes concurrent faults safe; exclusive would do too).
bool Mmu::invalidate_retry(unsigned cpu, uint64_t seq, gfn_t start, gfn_t end) {
  mmu_lock_.assert_held_shared(cpu);
  // The in-progress count and range change only under the lock held exclusively, so holding it
  // shared makes them stable here.
  if (invalidate_in_progress_ != 0 && start < invalidate_end_ && invalidate_start_ < end) return true;
  return invalidate_seq_.load(Order::relaxed) != seq;
}

// MMU lock: shared.
FaultOutcome Mmu::map_locked(VcpuMmu& v, unsigned cpu, gfn_t gfn, unsigned access,
                             const SlotView& slot, int goal, unsigned around) {
  mmu_lock_.assert_held_shared(cpu);
  Root* const root = v.root_;
  bool changed = false;
  TdpPath it(platform_, root->table, root->level, gfn);
  while (it.level() > goal) {
    const int level = it.level();
    const spte_t old = it.old_spte;
    if (spte::is_table(old, level)) {
      // Re-reads the link and steps into it; a link gone meanwhile (unlinked by another
      // CPU): start over.
      if (!it.step_down()) return FaultOutcome::retry;
      continue;
    }
    if (spte::is_leaf(old, level)) {
      // A huge leaf above the level this gfn may use now (e.g. the per-VM maximum was lowered).
      if (leaf_allows(old, access)) return changed ? FaultOutcome::fixed : FaultOutcome::spurious;
      const FaultOutcome o = split_huge_leaf_atomic(v, it.sptep(), old, level, it.gfn());
      if (o != FaultOutcome::fixed) return o;
      changed = true;
      if (!it.step_down()) return FaultOutcome::retry;
      continue;
    }
    if (!installable(old)) return FaultOutcome::retry;
    // A missing table: link a zeroed page from the vCPU's cache.
    const hpa_t page = v.cache_.take();
    if (page == 0) return FaultOutcome::out_of_memory;
    spte_t expected = old;
    const spte_t link = spte::make_table(page);
    // The page is all zeroes (alloc_page or give_back zeroed it); the CAS publishes it with
    // release semantics (pairing described in spte_ops.h, software and hardware walkers).
    if (!spte_cmpxchg(it.sptep(), expected, link, level)) {
      // Lost the race: the page was never visible, keep it for later and decide again with the
      // entry's current value.
      v.cache_.give_back(platform_, account_, page);
      it.old_spte = expected;
      continue;
    }
    count(cpu, kHotTablesLive);
    changed = true;
    // Into our table, unless another CPU unlinked it already: then start over.
    if (!it.step_down()) return FaultOutcome::retry;
  }

  const gfn_t base = spte::align_down(gfn, goal);
  const hpa_t hpa = slot.backing_hpa + ((base - slot.base_gfn) << kPageShift);
  unsigned perms = spte::kAccRead | spte::kAccWrite | spte::kAccExec;
  // Dirty logging by write protection: W only for a write, which is logged below.
  if (MMU_UNLIKELY(slot.dirty_wp) && !(access & spte::kAccWrite)) perms &= ~unsigned{spte::kAccWrite};
  const spte_t leaf = spte::make_leaf(hpa, goal, perms, !slot.read_only);
  spte_t old = it.old_spte;
  for (;;) {
    if (spte::is_leaf(old, goal)) {
      if (spte::pfn_addr(old) != hpa) return FaultOutcome::retry;  // stale: a zap is coming
      if (leaf_allows(old, access)) return changed ? FaultOutcome::fixed : FaultOutcome::spurious;
      // Upgrade the permissions of our own mapping; keep what the CPU recorded in A/D.
      if (spte_cmpxchg(it.sptep(), old, leaf | (old & (spte::kAccessed | spte::kDirty)), goal)) {
        if (MMU_UNLIKELY(slot.dirty_wp) && (access & spte::kAccWrite)) log_write(v, slot, gfn);
        return FaultOutcome::fixed;
      }
      continue;  // `old` holds the current value
    }
    if (spte::is_table(old, goal)) {
      // Tables left over from smaller mappings (leaf zaps keep tables): replace them with the
      // huge leaf the slot allows now.
      return replace_table_with_leaf_atomic(v, it.sptep(), old, goal, leaf);
    }
    if (!installable(old)) return FaultOutcome::retry;
    if (spte_cmpxchg(it.sptep(), old, leaf, goal)) {
      count(cpu, kHotLeaves + static_cast<unsigned>(goal));
      if (MMU_UNLIKELY(slot.dirty_wp) && (access & spte::kAccWrite)) log_write(v, slot, gfn);
      // Fault-around (prefault.cpp), in the same walk: the iterator still holds the table this
      // leaf went into. 4 KiB and 2 MiB leaves (a 1 GiB neighbour would map 1 GiB unasked).
      if (goal <= 2 && around != 0) fault_around_locked(cpu, it.table(), gfn, slot, around, goal);
      return FaultOutcome::fixed;
    }
  }
}

// MMU lock: shared. Replace huge leaf `old` (at `level`) by a table of 512 leaves one level
// down that map the same memory with the same attributes.
FaultOutcome Mmu::split_huge_leaf_atomic(VcpuMmu& v, spte_t* sptep, spte_t old, int level,
                                         gfn_t gfn) {
  assert_lock_held_shared();
  const hpa_t page = v.cache_.take();
  if (page == 0) return FaultOutcome::out_of_memory;
  auto* child = static_cast<spte_t*>(platform_.phys_to_virt(page));
  // Fill the whole table before linking it: no walker may ever see it half-filled.
  for (unsigned i = 0; i < spte::kEntriesPerTable; i++) {
    spte_store(&child[i], spte::split_child(old, level, i), level - 1);
  }
  spte_t expected = old;
  // Release publishes the 512 entries before the link (see spte_ops.h). No TLB flush: the old
  // huge translation and the new small ones map the same memory with the same permissions, which
  // the SDM allows to coexist in the TLBs. A/D bits set by the CPU after we read `old` make the
  // CAS fail (the value changed), so they are never lost.
  if (!spte_cmpxchg(sptep, expected, spte::make_table(page), level)) {
    v.cache_.give_back(platform_, account_, page);
    return FaultOutcome::retry;
  }
  // The children inherit D, so a CPU writing through them sets no D and (PML) logs nothing: a
  // D-logged slot learns now that every page of the huge leaf may be dirty (as a zap's drop).
  if (MMU_UNLIKELY(old & spte::kDirty) && dirty_d_slots_.load(Order::relaxed) != 0)
    dirty_log_dropped(v.as_id_, gfn, level);
  const unsigned cpu = platform_.cpu_id();
  count(cpu, kHotTablesLive);
  hot_.sub(cpu, kHotLeaves + static_cast<unsigned>(level), 1);
  count(cpu, kHotLeaves + static_cast<unsigned>(level - 1), spte::kEntriesPerTable);
  count(cpu, kHotSplits);
  return FaultOutcome::fixed;
}

// MMU lock: shared. Replace the link `old` (at `level`) to a subtree of smaller mappings by the
// huge `leaf`. Lock-free sequence:
FaultOutcome Mmu::replace_table_with_leaf_atomic(VcpuMmu& v, spte_t* sptep, spte_t old, int level,
                                                 spte_t leaf) {
  assert_lock_held_shared();
  // 1. Freeze the link: from now on every other CPU's CAS on it fails, so we own the entry.
  spte_t expected = old;
  if (!spte_cmpxchg(sptep, expected, spte::kFrozen, level)) return FaultOutcome::retry;
  // 2. Take every entry of the subtree away (exchange with a dead marker, so that CPUs still
  //    walking below fail their CAS) and chain the tables for reclamation.
  DeadTables dead;
  collect_dead_table_atomic(spte::pfn_addr(old), level - 1, dead);
  // 3. Flush: TLBs may cache the old small translations and paging-structure entries that point
  //    into the dead tables. Done while the link is still FROZEN, so no small and huge
  //    translations of this range coexist afterwards.
  flush();
  // 4. Install the leaf. CAS, not a store: if a CPU removing an ancestor table took our frozen
  //    entry meanwhile, the entry is dead and must stay so.
  expected = spte::kFrozen;
  const bool installed = spte_cmpxchg(sptep, expected, leaf, level);
  // 5. The dead tables are unreachable and flushed: hand them to the epoch.
  retire_dead(dead);
  if (!installed) return FaultOutcome::retry;
  const unsigned cpu = platform_.cpu_id();
  count(cpu, kHotLeaves + static_cast<unsigned>(level));
  count(cpu, kHotHugeReplacements);
  return FaultOutcome::fixed;
}

}  // namespace mmu

namespace mmu {

namespace {
// Work between two yield points of an eager split: one unit per entry visited, a table's worth
// per split (it writes 512 entries). So the walk leaves its epoch section, and asks
// should_yield(), after every split or every 512 entries visited (at most two splits when the
// iterator may not yield yet, right after a restart).
constexpr unsigned kSplitYieldUnits = spte::kEntriesPerTable;
}  // namespace

// Eager split of the huge leaves of [start, end) down to `level` (e.g. after the per-VM maximum
// was lowered). Pages come from the vCPU's cache, filled with no lock held; when it runs dry the
// walk returns where it stopped, and we refill and go on from there.
bool Mmu::split_huge_pages(VcpuMmu& v, gfn_t start, gfn_t end, int level) {
  MMU_ASSERT(level >= 1 && level < spte::kMaxHugeLevel);
  Root* const root = v.root_;  // the vCPU's reference keeps it (and its top table) alive
  if (root == nullptr) return true;
  gfn_t resume = start;
  while (resume < end) {
    // Progress: every call below starts with at least one page and returns early only when a
    // split found the cache empty, i.e. after at least one split used a page.
    if (!v.cache_.topup(platform_, account_, PageCache::kCapacity) && v.cache_.count() == 0) return false;
    epoch_.assert_not_in_read_section();  // no waiting for the lock in a section
    // The CPU id stays the same across the yields inside (no migration while the lock is held).
    const unsigned cpu = platform_.cpu_id();
    PerCpuReadGuard guard(mmu_lock_, cpu);
    resume = split_huge_leafs_yield_safe(v, cpu, root, resume, end, level);
  }
  return true;
}

// MMU lock: shared, dropped and retaken at yield points. Splits what [start, end) holds above
// `level` in `root`; returns `end` when done (or when the root became invalid), else the gfn
// where a split found the vCPU's page cache empty.
//
// Why yield: a writer (zap, teardown step, memslot update) waits for every reader of the lock,
// and a grace period waits for every epoch section; a split of a whole GiB down to 4 KiB (512
// splits, 262144 entries written) must hold neither for its whole length. So every
// kSplitYieldUnits of work the walk leaves its epoch section (a grace period may complete now)
// and, if the platform asks, drops the lock too (a writer may run now). Either way it must not
// use a table pointer from before (the table may have been unlinked and freed: faults unlink
// tables holding the lock only shared), so it restarts from the root at the current entry
// (TdpIter::mark_yielded), which it has not processed yet.
gfn_t Mmu::split_huge_leafs_yield_safe(VcpuMmu& v, unsigned cpu, Root* root, gfn_t start,
                                       gfn_t end, int level) {
  mmu_lock_.assert_held_shared(cpu);
  // An invalid root is being (or will be) torn down, which removes every leaf; splitting in it
  // would only race with the teardown's cursor. The vCPU's next root is faulted in afresh.
  if (root->invalid.load(Order::acquire)) return end;
  gfn_t resume = end;
  unsigned units = 0;
  // Tables may be unlinked by other CPUs holding the lock shared (replace_table_...): the
  // section keeps every table we may still point into alive.
  epoch_.read_lock();
  for (TdpIter it(platform_, root->table, root->level, start, end, level + 1); it.valid(); it.next()) {
    if (units >= kSplitYieldUnits && it.may_yield()) {
      units = 0;
      epoch_.read_unlock();
      if (platform_.should_yield()) {
        count(cpu, kHotSplitYields);
        mmu_lock_.unlock_shared(cpu);
        platform_.cpu_relax();
        epoch_.assert_not_in_read_section();  // no waiting for the lock in a section
        mmu_lock_.lock_shared(cpu);
        // A fast zap may have come meanwhile (and its teardown may have started).
        if (root->invalid.load(Order::acquire)) return end;
      }
      epoch_.read_lock();
      it.mark_yielded();
      continue;  // next() restarts from the root at this entry
    }
    units++;
    const int l = it.level();
    FaultOutcome o = FaultOutcome::fixed;
    // Split, or after a lost race (A/D set by the CPU, another split) decide again by what is
    // there now; next() then steps into the new table to split further.
    while (l > level && spte::is_leaf(it.old_spte, l)) {
      o = split_huge_leaf_atomic(v, it.sptep(), it.old_spte, l, it.gfn());
      if (o == FaultOutcome::fixed) {
        count(cpu, kHotEagerSplits);
        units += spte::kEntriesPerTable;
        break;
      }
      if (o != FaultOutcome::retry) break;
      it.old_spte = spte_read(it.sptep());
    }
    if (o == FaultOutcome::out_of_memory) {
      // A huge leaf may begin before `start`: resume at `start` then, not at the leaf's first
      // gfn, or the next walk would split what lies before the range.
      resume = it.gfn() > start ? it.gfn() : start;
      break;
    }
  }
  epoch_.read_unlock();
  return resume;
}

}  // namespace mmu
