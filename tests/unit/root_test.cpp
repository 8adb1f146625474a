// Roots: sharing by role, refcounts, invalidation, generation, exactly-once teardown.
// "Rule N": the five design rules of the MMU, docs/mmu.md §10.
#include <catch2/catch.hpp>

#include <algorithm>
#include <vector>

#include "tests/host/mmu_fixture.h"

using namespace mmu;
using hvtest::HostPlatform;
using hvtest::TestVcpu;
using hvtest::TestVm;

namespace {
// What one teardown step may do beyond its budget: one table unlinked (its 512 entries and the
// entry that linked it) and the path down to it.
constexpr unsigned kOvershoot = Mmu::kTeardownOvershoot;
static_assert(kOvershoot < 2 * spte::kEntriesPerTable, "about one table, not more");
}  // namespace

TEST_CASE("roots: shared by role, separate per address space", "[root]") {
  HostPlatform p;
  TestVm vm(p);
  TestVcpu a(vm), b(vm), c(vm, 1);
  const hpa_t ra = vm.mmu.vcpu_load_root(a);
  REQUIRE(ra != 0);
  REQUIRE(vm.mmu.vcpu_load_root(b) == ra);
  const hpa_t rc = vm.mmu.vcpu_load_root(c);
  REQUIRE(rc != 0);
  REQUIRE(rc != ra);
  REQUIRE(a.root()->refcount.load(Order::relaxed) == 2);
  REQUIRE(vm.mmu.stats().roots_live == 2);
  // Reloading with nothing changed keeps the same root and takes no extra reference.
  REQUIRE(vm.mmu.vcpu_load_root(a) == ra);
  REQUIRE(a.root()->refcount.load(Order::relaxed) == 2);
  // Switching address space drops the old reference.
  vm.mmu.vcpu_set_address_space(b, 1);
  REQUIRE(vm.mmu.vcpu_load_root(b) == rc);
  REQUIRE(a.root()->refcount.load(Order::relaxed) == 1);
}

TEST_CASE("roots: invalidation gives every vCPU a fresh root, never an invalid one", "[root]") {
  HostPlatform p;
  {
    TestVm vm(p);
    REQUIRE(vm.add_slot(1, 0, 4096, 1ull << 32, 1) == MemslotError::ok);
    TestVcpu a(vm), b(vm);
    REQUIRE(vm.fault(a, 5) == FaultOutcome::fixed);
    vm.mmu.vcpu_load_root(b);
    Root* old = a.root();
    const uint64_t gen = vm.mmu.roots().generation();
    const uint64_t ticket = vm.mmu.invalidate_all_roots();
    REQUIRE(vm.mmu.roots().generation() == gen + 1);
    REQUIRE(old->invalid.load(Order::relaxed));
    // A fault on the stale root retries instead of touching it.
    REQUIRE(vm.mmu.map(a, 6, spte::kAccRead) == FaultOutcome::retry);
    const hpa_t fresh = vm.mmu.vcpu_load_root(a);
    REQUIRE(fresh != old->table_pa);
    REQUIRE(!a.root()->invalid.load(Order::relaxed));
    REQUIRE(vm.mmu.vcpu_load_root(b) == fresh);
    REQUIRE(vm.mmu.stats().roots_live == 2);
    vm.mmu.wait_for_teardown(ticket);
    REQUIRE(vm.mmu.stats().roots_live == 1);
    REQUIRE(vm.fault(a, 5) == FaultOutcome::fixed);
  }
  REQUIRE(p.live_pages() == 0);
  REQUIRE(p.errors() == 0);
}

TEST_CASE("roots: an invalidated root is torn down exactly once (rule 3)", "[root][teardown]") {
  HostPlatform p;
  {
    TestVm vm(p);
    REQUIRE(vm.add_slot(1, 0, 4096, 1ull << 32, 1) == MemslotError::ok);
    TestVcpu a(vm);
    for (gfn_t g = 0; g < 2048; g += 7) REQUIRE(vm.fault(a, g) == FaultOutcome::fixed);
    // Invalidate twice while the vCPU still holds the old root: one teardown only.
    vm.mmu.invalidate_all_roots();
    const uint64_t t2 = vm.mmu.invalidate_all_roots();
    REQUIRE(vm.mmu.stats().teardowns_queued == 1);
    // Teardown runs while the vCPU still references the root: the root is emptied, not freed.
    vm.mmu.wait_for_teardown(t2);
    Root* old = a.root();
    REQUIRE(old->teardown_done.load(Order::relaxed));
    REQUIRE(vm.mmu.stats().roots_live == 1);
    uint64_t counts[4];
    vm.mmu.count_leaves(0, counts);
    REQUIRE(counts[1] == 0);
    // A third invalidation (a new memslot change) must not queue it again.
    vm.mmu.wait_for_teardown(vm.mmu.invalidate_all_roots());
    REQUIRE(vm.mmu.stats().teardowns_queued == 1);
    // The vCPU moves on; its drop of the last reference frees the root.
    REQUIRE(vm.fault(a, 1) == FaultOutcome::fixed);
    REQUIRE(vm.mmu.stats().roots_live == 1);
    REQUIRE(vm.mmu.stats().teardowns_queued == 1);
  }
  REQUIRE(p.live_pages() == 0);
  REQUIRE(p.check_quarantine() == 0);
  REQUIRE(p.errors() == 0);
}

TEST_CASE("roots: the last reference of a valid root schedules its teardown", "[root][teardown]") {
  HostPlatform p;
  TestVm vm(p);
  REQUIRE(vm.add_slot(1, 0, 512, 1ull << 32, 2) == MemslotError::ok);
  {
    TestVcpu a(vm);
    REQUIRE(vm.fault(a, 5) == FaultOutcome::fixed);
  }
  REQUIRE(vm.mmu.stats().teardowns_queued == 1);
  REQUIRE(vm.mmu.stats().roots_live == 1);
  while (vm.mmu.run_deferred_work(64) != 0) {
  }
  REQUIRE(vm.mmu.stats().roots_live == 0);
  vm.epoch.barrier();
  REQUIRE(vm.mmu.stats().pages_awaiting_reclaim == 0);
}

TEST_CASE("teardown: deferred work is bounded by its budget and completes", "[teardown]") {
  HostPlatform p;
  {
    TestVm vm(p);
    // 64 MiB of 4 KiB leaves plus a few 2 MiB and 1 GiB ones.
    REQUIRE(vm.add_slot(1, 0, 16384, 1ull << 32, 1) == MemslotError::ok);
    REQUIRE(vm.add_slot(2, hvtest::kPagesPer1G, 2 * hvtest::kPagesPer1G, 8 * hvtest::kGiB, 3) ==
            MemslotError::ok);
    TestVcpu a(vm);
    for (gfn_t g = 0; g < 16384; g++) REQUIRE(vm.fault(a, g) == FaultOutcome::fixed);
    REQUIRE(vm.fault(a, 0) == FaultOutcome::spurious);
    REQUIRE(vm.fault(a, hvtest::kPagesPer1G + 3) == FaultOutcome::fixed);
    REQUIRE(vm.fault(a, 2 * hvtest::kPagesPer1G + 3) == FaultOutcome::fixed);
    const uint64_t tables = vm.mmu.stats().tables_live;
    REQUIRE(tables == 2 + 32);  // PDPT, one PD, 32 PTs (the 1 GiB leaves sit in the PDPT)
    vm.mmu.invalidate_all_roots();
    REQUIRE(vm.mmu.vcpu_load_root(a) != 0);
    const uint64_t flushes = vm.mmu.stats().flushes;
    const unsigned kBudget = 2048;
    unsigned calls = 0, used, max_used = 0;
    uint64_t total = 0;
    while ((used = vm.mmu.run_deferred_work(kBudget)) != 0) {
      calls++;
      total += used;
      if (used > max_used) max_used = used;
      // One table removal (512 entries, and the path down to it) may finish a step that
      // started within budget.
      REQUIRE(used <= kBudget + kOvershoot);
    }
    std::printf("teardown with budget %u: %u passes, %llu units, most in one pass %u\n", kBudget, calls,
                static_cast<unsigned long long>(total), max_used);
    // The units are what was done: the 32 page tables alone hold 32 * 512 entries, and a pass
    // that crossed its budget by unlinking a table says so (4 tables from a fresh pass do).
    REQUIRE(total >= 32 * spte::kEntriesPerTable);
    REQUIRE(max_used > kBudget);
    REQUIRE(calls >= 32 * 512 / (kBudget + 512));
    REQUIRE(vm.mmu.stats().flushes > flushes);
    REQUIRE(vm.mmu.stats().roots_live == 1);
    REQUIRE(vm.mmu.stats().tables_live == 0);
    REQUIRE(vm.mmu.stats().leaves[1] == 0);
    REQUIRE(vm.mmu.stats().leaves[3] == 0);
  }
  REQUIRE(p.live_pages() == 0);
  REQUIRE(p.check_quarantine() == 0);
  REQUIRE(p.errors() == 0);
}

TEST_CASE("teardown: the units reported are the units done (a table counts its entries)", "[teardown]") {
  HostPlatform p;
  {
    TestVm vm(p);
    REQUIRE(vm.add_slot(1, 0, 16384, 1ull << 32, 1) == MemslotError::ok);  // 32 page tables
    TestVcpu a(vm);
    for (gfn_t g = 0; g < 16384; g++) REQUIRE(vm.fault(a, g) == FaultOutcome::fixed);
    vm.mmu.invalidate_all_roots();
    REQUIRE(vm.mmu.vcpu_load_root(a) != 0);
    unsigned calls = 0, used;
    uint64_t tables_removed = 0;
    for (;;) {
      const uint64_t tables = vm.mmu.stats().tables_live;
      used = vm.mmu.run_deferred_work(1);
      if (used == 0) break;
      calls++;
      // A budget of 1 still makes progress, and removing a table is reported as its entries.
      const uint64_t gone = tables - vm.mmu.stats().tables_live;
      tables_removed += gone;
      REQUIRE(used >= gone * spte::kEntriesPerTable);
      REQUIRE(used <= 1 + kOvershoot);
    }
    REQUIRE(tables_removed == 32 + 2);
    REQUIRE(calls >= 32);
  }
  REQUIRE(p.live_pages() == 0);
}

TEST_CASE("fast zap: backpressure bounds the invalid roots a zapper leaves behind", "[teardown][limit]") {
  // A vCPU that fast-zaps, faults its memory in again and zaps again, and never runs deferred
  // work: without backpressure (max_teardown_backlog = 0) every old root stays queued with its
  // whole tree (12 trees of 8 page tables here). With it, invalidate_all_roots() finishes all
  // but the last max_teardown_backlog invalidations itself, so at most that many old trees
  // exist at any time.
  constexpr unsigned kRounds = 12;
  static_assert(MmuConfig::kDefaultTeardownBacklog < kRounds / 2, "the test must be able to tell a pile-up");
  const bool backpressure = GENERATE(true, false);
  HostPlatform p;
  {
    MmuConfig cfg;
    if (!backpressure) cfg.max_teardown_backlog = 0;
    TestVm vm(p, cfg);
    REQUIRE(vm.add_slot(1, 0, 4096, 1ull << 32, 1) == MemslotError::ok);  // 8 page tables' worth
    TestVcpu a(vm);
    uint64_t max_tables = 0, max_invalid = 0;
    for (unsigned round = 0; round < kRounds; round++) {
      for (gfn_t g = 0; g < 4096; g += 512) REQUIRE(vm.fault(a, g) == FaultOutcome::fixed);
      vm.mmu.invalidate_all_roots();
      REQUIRE(vm.mmu.vcpu_load_root(a) != 0);  // drops the vCPU's reference on the old root
      const MmuStats s = vm.mmu.stats();
      if (s.tables_live > max_tables) max_tables = s.tables_live;
      if (s.roots_invalid > max_invalid) max_invalid = s.roots_invalid;
    }
    std::printf("%s: %u zaps, at most %llu invalid roots and %llu tables at once\n",
                backpressure ? "backpressure" : "no backpressure", kRounds,
                static_cast<unsigned long long>(max_invalid), static_cast<unsigned long long>(max_tables));
    if (backpressure) {
      // One tree is 8 page tables, a PD and a PDPT.
      REQUIRE(max_invalid <= MmuConfig::kDefaultTeardownBacklog);
      REQUIRE(max_tables <= (MmuConfig::kDefaultTeardownBacklog + 1) * 10);
    } else {
      REQUIRE(max_invalid == kRounds);
      REQUIRE(max_tables == kRounds * 10);  // every tree still there
    }
    vm.mmu.wait_for_teardown(vm.mmu.invalidate_all_roots());
  }
  REQUIRE(p.live_pages() == 0);
  REQUIRE(p.errors() == 0);
}

TEST_CASE("root walks: every root once, with a reference; sections per root; early exit drops it",
          "[root]") {
  HostPlatform p;
  {
    TestVm vm(p);
    REQUIRE(vm.add_slot(1, 0, 512, 1ull << 32, 1) == MemslotError::ok);
    TestVcpu a(vm), b(vm), c(vm, 1);
    REQUIRE(vm.fault(a, 1) == FaultOutcome::fixed);
    vm.mmu.invalidate_all_roots();  // `a` keeps the invalid root, `b` gets a fresh one
    REQUIRE(vm.mmu.vcpu_load_root(b) != 0);
    REQUIRE(vm.mmu.vcpu_load_root(c) != 0);
    Root* old = a.root();
    REQUIRE(old != b.root());
    const uint32_t refs_old = old->refcount.load(Order::relaxed);

    std::vector<Root*> seen;
    for (Root* r : vm.mmu.roots_lockless(0)) {
      // Rule 1: the body runs inside the walk's section for this root.
      REQUIRE(vm.epoch.in_read_section());
      // The walk holds a reference of its own while the body runs.
      if (r == old) REQUIRE(r->refcount.load(Order::relaxed) == refs_old + 1);
      seen.push_back(r);
    }
    REQUIRE(!vm.epoch.in_read_section());
    REQUIRE(seen.size() == 2);  // address space 0: the invalid root and the fresh one
    REQUIRE(std::count(seen.begin(), seen.end(), old) == 1);
    REQUIRE(std::count(seen.begin(), seen.end(), b.root()) == 1);
    REQUIRE(old->refcount.load(Order::relaxed) == refs_old);

    unsigned all = 0;
    for (Root* r : vm.mmu.roots_lockless(Roots::kAnyAs)) {
      (void)r;
      all++;
    }
    REQUIRE(all == 3);

    // Early exit: the section is closed and the reference dropped.
    for (Root* r : vm.mmu.roots_lockless(0)) {
      if (r == old || r == b.root()) break;
    }
    REQUIRE(!vm.epoch.in_read_section());
    REQUIRE(old->refcount.load(Order::relaxed) == refs_old);
    REQUIRE(b.root()->refcount.load(Order::relaxed) == 1);

    // The exclusive walk (zaps) under the MMU lock sees the same roots.
    {
      WriteLockGuard guard(vm.mmu.lock());
      unsigned n = 0;
      for (Root* r : vm.mmu.roots_exclusive(0)) {
        REQUIRE(vm.mmu.lock().is_write_locked());
        (void)r;
        n++;
      }
      REQUIRE(n == 2);
    }

    // A root whose teardown is done is skipped (nothing left to walk), though still referenced.
    vm.mmu.wait_for_teardown(vm.mmu.invalidate_all_roots());
    REQUIRE(old->teardown_done.load(Order::relaxed));
    unsigned left = 0;
    for (Root* r : vm.mmu.roots_lockless(0)) {
      (void)r;
      left++;
    }
    REQUIRE(left == 0);  // `b`'s root was invalidated and torn down too
  }
  REQUIRE(p.live_pages() == 0);
}
