// Mmu: construction and destruction, vCPU root handling, invalidation sequence, statistics.
#include "mmu/mmu.h"

#include "mmu/spte_ops.h"
#include "mmu/tdp_iter.h"

namespace mmu {

Mmu::Mmu(Platform& platform, Epoch& epoch, Memslots& memslots, const MmuConfig& config)
    : platform_(platform),
      epoch_(epoch),
      memslots_(memslots),
      config_(config),
      gfn_limit_(gfn_t{1} << (config.guest_phys_bits - kPageShift)),
      max_level_(config.max_level),
      mmu_lock_(platform),
      roots_(platform, account_, epoch, &Mmu::schedule_teardown_cb, this) {
  account_.set_limit(config.max_table_pages);
  // Dead tables waiting for a batched flush still hold their pages: under a limit, keep few.
  if (config.max_table_pages != 0) {
    const uint64_t cap = config.max_table_pages / 16;
    pending_cap_ = cap == 0 ? 1 : cap < kMaxPendingDead ? cap : kMaxPendingDead;
  }
  // The walker reaches tables through Platform::table_va(), which must agree with phys_to_virt().
  MMU_ASSERT(platform.table_va(kPageSize) == platform.phys_to_virt(kPageSize));
  MMU_ASSERT(config.root_level == 4 || config.root_level == 5);
  MMU_ASSERT(config.max_level >= 1 && config.max_level <= spte::kMaxHugeLevel);
  MMU_ASSERT(config.fault_around <= MmuConfig::kMaxFaultAround);
  // A gfn must be translatable by the root: 48-bit GPAs for 4 levels, 57-bit for 5.
  const unsigned root_bits = 12 + 9 * static_cast<unsigned>(config.root_level);
  MMU_ASSERT(config.guest_phys_bits > kPageShift && config.guest_phys_bits <= root_bits);
}

Mmu::~Mmu() {
  // Every vCPU has released its root: the only references left are teardown jobs'.
  const uint64_t ticket = invalidate_all_roots();
  wait_for_teardown(ticket);
  // Every job ended with a flush of the pending tables; take any stragglers all the same.
  flush_pending();
  // The dirty logs of slots still logged belong to the MMU (the memslot sets, freed by
  // ~Memslots, only point at them): freed with the barrier below.
  {
    SpinLockGuard g(memslots_.update_lock());
    for (unsigned as = 0; as < Memslots::kAddressSpaces; as++) {
      const MemslotSet* set = memslots_.active_locked(as);
      if (set == nullptr) continue;
      for (const Memslot& s : *set)
        if (s.dirty_log != nullptr) s.dirty_log->retire(epoch_);
    }
  }
  // Roots free themselves when their job ends; then everything dead goes through the epoch.
  for (;;) {
    retry_limbo();
    epoch_.barrier();
    SpinLockGuard g(limbo_lock_);
    if (limbo_.head == 0) break;
  }
  MMU_ASSERT(roots_.live() == 0);
  // Every page charged to the account has been freed, including those of the epoch's batches
  // (the barrier above ran them all): the account is exact, or this fires.
  MMU_ASSERT(account_.live() == 0);
}

void Mmu::vcpu_init(VcpuMmu& v, unsigned as_id) {
  MMU_ASSERT(as_id < config_.address_spaces);
  v.as_id_ = as_id;
  v.root_ = nullptr;
}

hpa_t Mmu::vcpu_load_root(VcpuMmu& v) {
  // Read the generation before looking for a root: an invalidation that happens after this
  // load changes the generation again, so the next entry reloads once more.
  const uint64_t gen = roots_.generation();
  Root* old = v.root_;
  // Acquire on `invalid` pairs with its release store in Roots::invalidate_all()/put().
  if (old && v.root_generation_ == gen && !old->invalid.load(Order::acquire)) return old->table_pa;
  Root* fresh = roots_.get(v.as_id_, config_.root_level);
  if (fresh == nullptr) return 0;
  v.root_ = fresh;
  v.root_generation_ = gen;
  // Dropped only now that the vCPU will enter with the new root.
  if (old) roots_.put(old);
  return fresh->table_pa;
}

void Mmu::vcpu_set_address_space(VcpuMmu& v, unsigned as_id) {
  MMU_ASSERT(as_id < config_.address_spaces);
  if (v.as_id_ == as_id) return;
  v.as_id_ = as_id;
  if (v.root_) roots_.put(v.root_);
  v.root_ = nullptr;
}

void Mmu::vcpu_release(VcpuMmu& v) {
  if (v.root_) roots_.put(v.root_);
  v.root_ = nullptr;
  v.cache_.drain(platform_, account_);
}

void Mmu::invalidate_begin(unsigned as_id, gfn_t start, gfn_t end) {
  epoch_.assert_not_in_read_section();  // no waiting for the lock in a section
  WriteLockGuard guard(mmu_lock_);
  // Faults check these under the lock held shared: from the moment we release the lock, no
  // fault installs a leaf in [start, end) until invalidate_end().
  if (invalidate_in_progress_++ == 0) {
    invalidate_start_ = start;
    invalidate_end_ = end;
  } else {
    if (start < invalidate_start_) invalidate_start_ = start;
    if (end > invalidate_end_) invalidate_end_ = end;
  }
}

void Mmu::invalidate_end() {
  epoch_.assert_not_in_read_section();  // no waiting for the lock in a section
  WriteLockGuard guard(mmu_lock_);
  MMU_ASSERT(invalidate_in_progress_ > 0);
  // Release: pairs with the acquire snapshot at the start of map(). A fault that took its
  // snapshot before this point sees a different value under the lock and retries.
  invalidate_seq_.fetch_add(1, Order::release);
  if (--invalidate_in_progress_ == 0) {
    invalidate_start_ = 0;
    invalidate_end_ = 0;
  }
}

bool Mmu::lookup(Root* root, gfn_t gfn, spte_t* leaf, int* level) {
  EpochReadGuard section(epoch_);
  for (TdpIter it(platform_, root->table, root->level, gfn, gfn + 1, 1); it.valid(); it.next()) {
    if (spte::is_leaf(it.old_spte, it.level())) {
      *leaf = it.old_spte;
      *level = it.level();
      return true;
    }
  }
  return false;
}

// Never called: a place inside the class's scope for static_asserts on its private layout.
// offsetof on a class that is not standard-layout is a compiler extension (GCC and clang both
// evaluate it at compile time); the warning about it is silenced for these lines only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
void Mmu::check_layout() {
  constexpr size_t kLine = 64;
  static_assert(alignof(Mmu) >= kLine, "the Mmu starts a cache line");
  // What every fault reads before and under the lock shares no line with anything a fault or
  // a writer writes: the lock's words, the page account, the counters.
  constexpr size_t read_mostly_end = offsetof(Mmu, invalidate_seq_) + sizeof(Atomic<uint64_t>);
  static_assert(offsetof(Mmu, platform_) == 0, "read-mostly fields start the object's first line");
  static_assert(offsetof(Mmu, mmu_lock_) % kLine == 0 && offsetof(Mmu, mmu_lock_) >= read_mostly_end,
                "the lock starts on a line after the read-mostly fields");
  static_assert(offsetof(Mmu, account_) % kLine == 0 &&
                    offsetof(Mmu, account_) >= offsetof(Mmu, mmu_lock_) + sizeof(PerCpuRwLock),
                "the page account has lines of its own");
  static_assert(offsetof(Mmu, hot_) % kLine == 0 && offsetof(Mmu, stats_) % kLine == 0,
                "the counters have lines of their own");
  static_assert(offsetof(Mmu, max_level_) < read_mostly_end && offsetof(Mmu, gfn_limit_) < read_mostly_end,
                "max_level_ and gfn_limit_ are read-mostly fields");
}
#pragma GCC diagnostic pop

MmuStats Mmu::stats() {
  MmuStats s;
  // Installed (per CPU) plus removed (shared, wrapped below 0): see Mmu::Counters.
  for (unsigned l = 1; l <= 3; l++) {
    s.leaves[l] = hot_.sum(kHotLeaves + l) + stats_.leaves[l].load(Order::relaxed);
  }
  s.tables_live = hot_.sum(kHotTablesLive) + stats_.tables_live.load(Order::relaxed);
  s.table_pages_live = account_.live();
  s.table_pages_limit = account_.limit();
  s.table_pages_refused = account_.refused();
  s.zapped_leaves = stats_.zapped_leaves.load(Order::relaxed);
  s.zap_calls = stats_.zap_calls.load(Order::relaxed);
  s.flushes = stats_.flushes.load(Order::relaxed);
  s.roots_live = roots_.live();
  s.roots_invalid = roots_.invalid_count();
  // Unlinked and not yet freed: waiting for the epoch, in limbo, or for their batch's flush.
  s.pages_awaiting_reclaim = epoch_.pending_pages() + stats_.limbo_pages.load(Order::relaxed) +
                             stats_.dead_tables_pending.load(Order::relaxed);
  s.splits = hot_.sum(kHotSplits);
  s.eager_splits = hot_.sum(kHotEagerSplits);
  s.split_yields = hot_.sum(kHotSplitYields);
  s.huge_replacements = hot_.sum(kHotHugeReplacements);
  s.prefault_leaves = hot_.sum(kHotPrefaultLeaves);
  s.fault_around_leaves = hot_.sum(kHotFaultAroundLeaves);
  s.teardown_steps = stats_.teardown_steps.load(Order::relaxed);
  s.teardowns_queued = stats_.teardowns_queued.load(Order::relaxed);
  s.teardown_steps_helped = stats_.teardown_steps_helped.load(Order::relaxed);
  s.dead_tables_pending = stats_.dead_tables_pending.load(Order::relaxed);
  s.flushes_avoided = stats_.flushes_avoided.load(Order::relaxed);
  s.reclaim_calls = stats_.reclaim_calls.load(Order::relaxed);
  s.reclaim_pages = stats_.reclaim_pages.load(Order::relaxed);
  for (unsigned i = 0; i < static_cast<unsigned>(FaultOutcome::kCount); i++) {
    s.faults[i] = hot_.sum(kHotFaults + i);
  }
  return s;
}

}  // namespace mmu
