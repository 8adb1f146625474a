// Recording fake memory: every SPTE write of a long scenario is observed, and after each one the
// whole tree is checked (mmu/spte_ops.h routes every write through the recorder hook).
// Invariants at every intermediate state:
//   - each write lands whole (the entry holds exactly the new value: no torn entry);
//   - every reachable entry is well-formed; every link points to a live page whose entries are
//     all well-formed already (a table is filled or zeroed before it is linked);
//   - no leaf maps outside the backing of a slot that may legitimately still be mapped.
#include <catch2/catch.hpp>

#include "tests/host/mmu_fixture.h"

using namespace mmu;
using hvtest::HostPlatform;
using hvtest::kGiB;
using hvtest::kPagesPer1G;
using hvtest::kPagesPer2M;
using hvtest::SlotRef;
using hvtest::TestVcpu;
using hvtest::TestVm;

TEST_CASE("recorder: every intermediate state of faults, splits, zaps, updates, teardown", "[recorder]") {
  HostPlatform p;
  {
    TestVm vm(p);
    // Every (gfn range -> backing) the scenario ever establishes; none contradicts another.
    const std::vector<SlotRef> ever = {
        {0, 4 * kPagesPer2M, 1ull << 32, false},          // A, 2 MiB capable
        {kPagesPer1G, kPagesPer1G, 4 * kGiB, false},      // B, 1 GiB capable
        {3 * kPagesPer1G, 1000, 1ull << 40, false},       // C, 4 KiB only
        {5 * kPagesPer1G, 1000, 1ull << 40, false},       // C after its move
    };
    REQUIRE(vm.add_slot(1, 0, 4 * kPagesPer2M, 1ull << 32, 2) == MemslotError::ok);
    REQUIRE(vm.add_slot(2, kPagesPer1G, kPagesPer1G, 4 * kGiB, 3) == MemslotError::ok);
    REQUIRE(vm.add_slot(3, 3 * kPagesPer1G, 1000, 1ull << 40, 1) == MemslotError::ok);

    hvtest::WriteRecorder rec([&](spte_t* ptr, spte_t, spte_t n, int) -> std::string {
      if (__atomic_load_n(ptr, __ATOMIC_RELAXED) != n) return "torn or lost write";
      return vm.check_all_roots(ever);
    });
    TestVcpu v(vm), w(vm, 1);
    for (gfn_t g : {gfn_t{0}, gfn_t{600}, kPagesPer1G + 5, 3 * kPagesPer1G + 7, 3 * kPagesPer1G + 999})
      REQUIRE(vm.fault(v, g, 3) == FaultOutcome::fixed);
    // 4 KiB mappings where 2 MiB would do, then zap and let the 2 MiB leaf replace the table.
    vm.mmu.set_max_level(1);
    for (gfn_t g = 2 * kPagesPer2M; g < 2 * kPagesPer2M + 40; g++) REQUIRE(vm.fault(v, g) == FaultOutcome::fixed);
    vm.mmu.zap_range(0, 2 * kPagesPer2M, 2 * kPagesPer2M + 20);
    vm.mmu.set_max_level(3);
    REQUIRE(vm.fault(v, 2 * kPagesPer2M + 3) == FaultOutcome::fixed);
    REQUIRE(vm.leaf(v, 2 * kPagesPer2M + 3).second == 2);
    // Splits, eager (1 GiB -> 4 KiB) and on demand.
    REQUIRE(vm.mmu.split_huge_pages(v, kPagesPer1G, kPagesPer1G + kPagesPer2M, 1));
    // Zaps that clip huge leaves; a read-only flip; a move; a delete.
    vm.mmu.zap_range(0, kPagesPer2M - 3, kPagesPer2M + 3);
    REQUIRE(vm.mmu.update_memslot(MemslotOp::set_flags(0, 2, Memslot::kReadOnly)) == MemslotError::ok);
    REQUIRE(vm.fault(v, kPagesPer1G + 9) == FaultOutcome::fixed);
    REQUIRE(vm.mmu.update_memslot(MemslotOp::move(0, 3, 5 * kPagesPer1G)) == MemslotError::ok);
    REQUIRE(vm.fault(v, 5 * kPagesPer1G + 3, 3) == FaultOutcome::fixed);
    // Fast zap with a teardown done in many small steps, while the vCPU refaults.
    const uint64_t ticket = vm.mmu.invalidate_all_roots();
    REQUIRE(vm.fault(v, 100) == FaultOutcome::fixed);
    while (vm.mmu.run_deferred_work(300) != 0) {
    }
    vm.mmu.wait_for_teardown(ticket);
    REQUIRE(vm.mmu.update_memslot(MemslotOp::remove(0, 1)) == MemslotError::ok);
    REQUIRE(vm.fault(v, 100) == FaultOutcome::unbacked);
    // After every update returned, nothing maps outside the *current* slots.
    REQUIRE(vm.check_all_roots(vm.slot_refs()).empty());
    INFO(rec.first_error);
    REQUIRE(rec.first_error.empty());
    REQUIRE(rec.writes > 1000);
    REQUIRE(rec.links > 5);
    std::printf("[recorder] %llu SPTE writes checked, %llu table links\n",
                (unsigned long long)rec.writes, (unsigned long long)rec.links);
  }
  REQUIRE(p.live_pages() == 0);
  REQUIRE(p.check_quarantine() == 0);
  REQUIRE(p.errors() == 0);
}

TEST_CASE("recorder: the checker catches a table linked before it is filled", "[recorder]") {
  // The check itself must be able to fail: link a page of garbage and see it reported.
  HostPlatform p;
  hpa_t root = p.alloc_page(), child = p.alloc_page();
  auto* c = static_cast<spte_t*>(p.phys_to_virt(child));
  c[5] = 0x5A5A5A5A5A5A5A5Aull;  // poison-like junk: W-only with random bits
  auto* r = static_cast<spte_t*>(p.phys_to_virt(root));
  spte_store(&r[0], spte::make_table(child), 4);
  REQUIRE(!hvtest::check_tree(p, r, 4, 0, {}).empty());
  c[5] = spte::make_leaf(0x40000000, 3, 7, true);  // a leaf outside every slot
  REQUIRE(hvtest::check_tree(p, r, 4, 0, {}).find("outside") != std::string::npos);
  c[5] = 0;
  REQUIRE(hvtest::check_tree(p, r, 4, 0, {}).empty());
  p.free_page(child);
  REQUIRE(hvtest::check_tree(p, r, 4, 0, {}).find("not live") != std::string::npos);
  p.free_page(root);
}
