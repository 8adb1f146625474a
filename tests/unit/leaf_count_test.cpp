// Leaf counts: the counters (stats().leaves, tables_live) are exact at quiescent points, after
// every kind of operation and in both address spaces; the lockless walks that count or age
// leaves keep each epoch section short (a yield point between roots and inside long roots).
#include <catch2/catch.hpp>

#include "tests/host/mmu_fixture.h"
#include "tests/host/probe_platform.h"
#include "tests/host/tree_census.h"

using namespace mmu;
using hvtest::HostPlatform;
using hvtest::kGiB;
using hvtest::kPagesPer1G;
using hvtest::kPagesPer2M;
using hvtest::ProbePlatform;
using hvtest::ProbeVm;

namespace {

// Set Accessed on every leaf of every root, as the CPU's page walks would.
void touch_all(Platform& p, const spte_t* t, int level) {
  for (unsigned i = 0; i < spte::kEntriesPerTable; i++) {
    const spte_t s = __atomic_load_n(&t[i], __ATOMIC_ACQUIRE);
    if (spte::is_leaf(s, level)) {
      __atomic_fetch_or(const_cast<spte_t*>(&t[i]), spte::kAccessed, __ATOMIC_RELAXED);
    } else if (spte::is_table(s, level)) {
      touch_all(p, static_cast<const spte_t*>(p.phys_to_virt(spte::pfn_addr(s))), level - 1);
    }
  }
}

// Three roots of address space 0 (two invalid, their teardown queued but not run), each with
// 4096 leaves of 4 KiB in 8 tables: 5632 entries per root for a walk.
void three_roots_of_4k_leaves(ProbeVm& vm, VcpuMmu& v) {
  REQUIRE(vm.add_slot(1, 0, 8 * kPagesPer2M, 8 * kGiB, 1) == MemslotError::ok);
  for (int r = 0; r < 3; r++) {
    if (r) vm.mmu.invalidate_all_roots();
    for (gfn_t g = 0; g < 8 * kPagesPer2M; g++) REQUIRE(vm.fault(v, g) == FaultOutcome::fixed);
  }
  REQUIRE(vm.mmu.stats().leaves[1] == 3 * 4096);
  REQUIRE(vm.mmu.stats().roots_invalid == 2);
}

bool mapped(FaultOutcome o) { return o == FaultOutcome::fixed || o == FaultOutcome::spurious; }

}  // namespace

TEST_CASE("count_leaves: yield points between roots and inside long roots, outside any epoch section",
          "[count][yield]") {
  HostPlatform host;
  ProbePlatform p(host);
  {
    ProbeVm vm(p);
    hvtest::ProbeVcpu v(vm);
    three_roots_of_4k_leaves(vm, v);

    // Without yields: the count, and no call into the platform's relax.
    p.yield = false;
    uint64_t n[4];
    const uint64_t relaxed_before = p.relaxed;
    vm.mmu.count_leaves(0, n);
    REQUIRE(n[1] == 3 * 4096);
    REQUIRE(n[2] == 0);
    REQUIRE(n[3] == 0);
    REQUIRE(p.relaxed == relaxed_before);

    // With yields forced: every yield point is outside any section; a grace period (here a
    // whole barrier, which frees a page retired just before the count) completes in the middle
    // of the walk; and the count is the same.
    REQUIRE(vm.epoch.retire_page(host.alloc_page()));
    REQUIRE(vm.epoch.pending_pages() == 1);
    uint64_t calls = 0, outside = 0, pending_after_first = ~0ull;
    bool armed = true;
    p.yield = true;
    p.on_relax = [&] {
      if (!armed) return;
      calls++;
      if (vm.epoch.in_read_section()) return;
      outside++;
      if (calls == 3) {
        vm.epoch.barrier();
        pending_after_first = vm.epoch.pending_pages();
      }
    };
    vm.mmu.count_leaves(0, n);
    armed = false;
    p.on_relax = nullptr;
    REQUIRE(n[1] == 3 * 4096);
    REQUIRE(outside == calls);
    // At least one yield point per kEntriesPerTable entries: 5632 entries per root -> >= 10
    // inside each root, plus one before each root.
    REQUIRE(calls >= 3 * 11);
    REQUIRE(pending_after_first == 0);
  }
  REQUIRE(host.live_pages() == 0);
  REQUIRE(host.errors() == 0);
}

TEST_CASE("age_range: yield points inside long roots, outside any epoch section; every young leaf counted once",
          "[age][yield]") {
  HostPlatform host;
  ProbePlatform p(host);
  {
    ProbeVm vm(p);
    hvtest::ProbeVcpu v(vm);
    three_roots_of_4k_leaves(vm, v);
    for (Root* r = vm.mmu.roots().next(nullptr, 0); r; r = vm.mmu.roots().next(r, 0)) touch_all(p, r->table, r->level);
    uint64_t calls = 0, outside = 0;
    bool armed = true;
    p.yield = true;
    p.on_relax = [&] {
      if (!armed) return;
      calls++;
      if (!vm.epoch.in_read_section()) outside++;
    };
    // Restarts from the root never count a leaf twice, nor skip one.
    REQUIRE(vm.mmu.age_range(0, 0, 8 * kPagesPer2M) == 3 * 4096);
    armed = false;
    p.on_relax = nullptr;
    REQUIRE(calls >= 3 * 8);
    REQUIRE(outside == calls);
    REQUIRE(vm.mmu.age_range(0, 0, 8 * kPagesPer2M) == 0);
  }
  REQUIRE(host.live_pages() == 0);
  REQUIRE(host.errors() == 0);
}

TEST_CASE("counters: leaves and tables_live equal a walk after every kind of operation, in both address spaces",
          "[count]") {
  HostPlatform p;
  {
    hvtest::TestVm vm(p);
    constexpr gfn_t kBig = kPagesPer1G;  // as 0: 1 GiB at 1 GiB, may use 1 GiB leaves
    REQUIRE(vm.add_slot(1, kBig, kPagesPer1G, 2 * kGiB, 3) == MemslotError::ok);
    REQUIRE(vm.add_slot(2, 0, 4 * kPagesPer2M, 8 * kGiB, 2) == MemslotError::ok);
    REQUIRE(vm.add_slot(3, 0, 4 * kPagesPer2M, 16 * kGiB, 2, 0, 1) == MemslotError::ok);  // as 1
    hvtest::TestVcpu a(vm, 0), b(vm, 1);
    unsigned checks = 0;
    auto check = [&](const char* what) {
      INFO("after: " << what);
      const MmuStats st = vm.mmu.stats();
      const hvtest::TreeCensus c = hvtest::census(p, vm.mmu);
      REQUIRE(c.compare(st) == "");
      uint64_t walked[4];
      hvtest::count_all_leaves(vm.mmu, 2, walked);
      for (int l = 1; l <= 3; l++) REQUIRE(walked[l] == c.leaves[l]);
      checks++;
    };
    const unsigned kX = spte::kAccExec, kW = spte::kAccWrite;

    REQUIRE(vm.fault(a, kBig + 7) == FaultOutcome::fixed);
    REQUIRE(vm.leaf(a, kBig).second == 3);
    REQUIRE(vm.fault(a, 5) == FaultOutcome::fixed);
    REQUIRE(vm.fault(b, kPagesPer2M + 1, kW) == FaultOutcome::fixed);
    check("1 GiB, 2 MiB faults in two address spaces");
    REQUIRE(vm.mmu.stats().leaves[3] == 1);
    REQUIRE(vm.mmu.stats().leaves[2] == 2);

    vm.mmu.set_max_level(1);
    REQUIRE(vm.fault(b, 3 * kPagesPer2M + 1) == FaultOutcome::fixed);
    check("4 KiB fault");
    REQUIRE(vm.mmu.split_huge_pages(a, kBig, kBig + 4 * kPagesPer2M, 1));
    check("eager split 1 GiB -> 2 MiB -> 4 KiB");
    // A fault-path split: a 2 MiB leaf without X (as a no-exec-huge-pages policy would leave
    // it), max level 1, an exec fault.
    REQUIRE(vm.mmu.split_huge_pages(a, kBig + 8 * kPagesPer2M, kBig + 9 * kPagesPer2M, 2));
    {
      spte_t* t = a.root()->table;
      for (int l = 4; l > 2; l--) t = static_cast<spte_t*>(p.phys_to_virt(spte::pfn_addr(t[spte::index_of(kBig, l)])));
      spte_t* e = &t[spte::index_of(kBig + 8 * kPagesPer2M, 2)];
      REQUIRE(spte::is_leaf(*e, 2));
      *e &= ~spte::kExec;
    }
    const uint64_t splits = vm.mmu.stats().splits;
    REQUIRE(vm.fault(a, kBig + 8 * kPagesPer2M + 3, kX) == FaultOutcome::fixed);
    REQUIRE(vm.mmu.stats().splits == splits + 1);
    check("fault-path split");

    vm.mmu.set_max_level(3);
    const uint64_t repl = vm.mmu.stats().huge_replacements;
    REQUIRE(vm.fault(a, kBig + 100) == FaultOutcome::fixed);  // the 1 GiB entry is a table now
    REQUIRE(vm.leaf(a, kBig + 100).second == 3);
    REQUIRE(vm.mmu.stats().huge_replacements == repl + 1);
    check("1 GiB leaf replaces a subtree of 4 KiB and 2 MiB leaves");

    vm.mmu.set_max_level(1);
    for (gfn_t g = 0; g < kPagesPer2M; g += 3) REQUIRE(vm.fault(b, g) == FaultOutcome::fixed);
    vm.mmu.zap_range(1, 100, 700);
    check("zap_range over part of a table and a 2 MiB leaf");
    vm.mmu.age_range(1, 0, kPagesPer1G);
    check("aging");

    REQUIRE(vm.mmu.update_memslot(MemslotOp::move(1, 3, 8 * kPagesPer2M)) == MemslotError::ok);
    check("memslot move");
    REQUIRE(vm.fault(b, 8 * kPagesPer2M + 9, kW) == FaultOutcome::fixed);
    REQUIRE(vm.mmu.update_memslot(MemslotOp::set_flags(1, 3, Memslot::kReadOnly)) == MemslotError::ok);
    check("memslot read-only");
    vm.mmu.set_max_level(3);
    REQUIRE(vm.fault(a, kBig) == FaultOutcome::spurious);
    REQUIRE(vm.mmu.update_memslot(MemslotOp::remove(0, 1)) == MemslotError::ok);
    check("memslot delete of a 1 GiB leaf's slot");

    // An address-space switch drops the last reference on a valid root: its teardown is queued
    // (on this CPU). Until it is done the root is out of reach of Roots::next(), so walks
    // (count_leaves, the census) do not see it while the counters still hold its leaves: the
    // counters are compared with walks once the queue is drained.
    REQUIRE(mapped(vm.fault(a, 17)));
    vm.mmu.vcpu_set_address_space(a, 1);
    while (vm.mmu.run_deferred_work(1000) != 0) {
    }
    REQUIRE(mapped(vm.fault(a, 8 * kPagesPer2M + 17)));
    check("address-space switch");

    // A fast zap with the teardown left to deferred work, checked after every small step
    // (the invalid roots' leaves and tables count until their step removes them; the job's
    // reference keeps them within reach of the walks).
    for (gfn_t g = 0; g < 4 * kPagesPer2M; g += 97) REQUIRE(mapped(vm.fault(b, 8 * kPagesPer2M + g % 1024)));
    hvtest::TestVcpu c(vm, 0);
    for (gfn_t g = 0; g < 4 * kPagesPer2M; g += 97) REQUIRE(mapped(vm.fault(c, g)));
    vm.mmu.set_max_level(1);
    for (gfn_t g = 0; g < 2 * kPagesPer2M; g += 5) REQUIRE(mapped(vm.fault(b, 8 * kPagesPer2M + g)));
    const uint64_t ticket = vm.mmu.invalidate_all_roots();
    check("fast zap, nothing torn down yet");
    unsigned steps = 0;
    while (!vm.mmu.roots().teardowns_done_up_to(ticket)) {
      REQUIRE(steps < 10000);
      vm.mmu.run_deferred_work(1 + 37 * (steps % 7));
      check("a deferred teardown step");
      if (++steps == 3) {
        REQUIRE(vm.fault(c, 17) == FaultOutcome::fixed);  // a new root beside the old ones
        check("a fault in a new root during the teardown");
      }
    }
    REQUIRE(steps > 3);
    REQUIRE(checks > 20);
  }
  REQUIRE(p.live_pages() == 0);
  REQUIRE(p.check_quarantine() == 0);
  REQUIRE(p.errors() == 0);
}
