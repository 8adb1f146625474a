// Leaf zaps (including the over-zap of partly covered huge leaves), memslot update flows, aging.
// "Rule N": the five design rules of the MMU, docs/mmu.md §10.
#include <catch2/catch.hpp>

#include "tests/host/mmu_fixture.h"

using namespace mmu;
using hvtest::HostPlatform;
using hvtest::kGiB;
using hvtest::kPagesPer1G;
using hvtest::kPagesPer2M;
using hvtest::TestVcpu;
using hvtest::TestVm;

TEST_CASE("zap: leaves in range go, tables stay, a flush follows", "[zap]") {
  HostPlatform p;
  TestVm vm(p);
  REQUIRE(vm.add_slot(1, 0, 4096, 1ull << 32, 1) == MemslotError::ok);
  TestVcpu v(vm);
  for (gfn_t g = 0; g < 1024; g++) REQUIRE(vm.fault(v, g) == FaultOutcome::fixed);
  const uint64_t tables = vm.mmu.stats().tables_live;
  const uint64_t flushes = p.flush_count();
  vm.mmu.zap_range(0, 100, 600);
  REQUIRE(p.flush_count() == flushes + 1);
  for (gfn_t g : {gfn_t{0}, gfn_t{99}, gfn_t{600}, gfn_t{1023}}) REQUIRE(vm.leaf(v, g).second == 1);
  for (gfn_t g : {gfn_t{100}, gfn_t{300}, gfn_t{599}}) REQUIRE(vm.leaf(v, g).second == 0);
  REQUIRE(vm.mmu.stats().tables_live == tables);  // leaf-only (rule 4)
  REQUIRE(vm.mmu.stats().leaves[1] == 1024 - 500);
  REQUIRE(vm.mmu.stats().zapped_leaves == 500);
  // Nothing to zap: no flush.
  vm.mmu.zap_range(0, 100, 600);
  REQUIRE(p.flush_count() == flushes + 1);
  REQUIRE(vm.check_all_roots(vm.slot_refs()).empty());
}

TEST_CASE("zap: a partly covered huge leaf is zapped whole, the next fault restores it", "[zap]") {
  HostPlatform p;
  TestVm vm(p);
  REQUIRE(vm.add_slot(1, kPagesPer1G, kPagesPer1G, 4 * kGiB, 3) == MemslotError::ok);
  REQUIRE(vm.add_slot(2, 0, 4 * kPagesPer2M, 8 * kGiB, 2) == MemslotError::ok);
  TestVcpu v(vm);
  REQUIRE(vm.fault(v, kPagesPer1G) == FaultOutcome::fixed);
  REQUIRE(vm.fault(v, kPagesPer2M + 1) == FaultOutcome::fixed);
  REQUIRE(vm.fault(v, 2 * kPagesPer2M + 1) == FaultOutcome::fixed);
  // Zap 8 pages in the middle of the 1 GiB leaf, and a range that clips the end of the first
  // 2 MiB leaf and the start of the second.
  vm.mmu.zap_range(0, kPagesPer1G + 1000, kPagesPer1G + 1008);
  vm.mmu.zap_range(0, 2 * kPagesPer2M - 1, 2 * kPagesPer2M + 1);
  // Over-zap: the whole leaves are gone, also where they reached outside the ranges.
  REQUIRE(vm.leaf(v, kPagesPer1G).second == 0);
  REQUIRE(vm.leaf(v, 2 * kPagesPer1G - 1).second == 0);
  REQUIRE(vm.leaf(v, kPagesPer2M).second == 0);
  REQUIRE(vm.leaf(v, 3 * kPagesPer2M - 1).second == 0);
  REQUIRE(vm.mmu.stats().zapped_leaves == 3);
  // What still belongs to a slot comes back, at the same size.
  REQUIRE(vm.fault(v, kPagesPer1G + 5) == FaultOutcome::fixed);
  REQUIRE(vm.leaf(v, kPagesPer1G + 1004).second == 3);
  REQUIRE(vm.fault(v, kPagesPer2M) == FaultOutcome::fixed);
  REQUIRE(vm.leaf(v, kPagesPer2M).second == 2);
  REQUIRE(vm.check_all_roots(vm.slot_refs()).empty());
}

TEST_CASE("zap: every root of the address space, valid or not; other spaces untouched", "[zap]") {
  HostPlatform p;
  TestVm vm(p);
  REQUIRE(vm.add_slot(1, 0, 512, 1ull << 32, 1) == MemslotError::ok);
  REQUIRE(vm.add_slot(1, 0, 512, 1ull << 33, 1, 0, 1) == MemslotError::ok);
  TestVcpu a(vm), b(vm), c(vm, 1);
  REQUIRE(vm.fault(a, 3) == FaultOutcome::fixed);
  vm.mmu.invalidate_all_roots();  // `b` will load a new root, `a` still uses the old one
  REQUIRE(vm.fault(b, 3) == FaultOutcome::fixed);
  REQUIRE(vm.fault(c, 3) == FaultOutcome::fixed);
  Root* old = a.root();
  REQUIRE(old != b.root());
  vm.mmu.zap_range(0, 0, 512);
  spte_t s;
  int level;
  REQUIRE(!vm.mmu.lookup(old, 3, &s, &level));
  REQUIRE(!vm.mmu.lookup(b.root(), 3, &s, &level));
  REQUIRE(vm.mmu.lookup(c.root(), 3, &s, &level));
  vm.mmu.wait_for_teardown(vm.mmu.invalidate_all_roots());
}

TEST_CASE("zap: yielding in the middle of a zap still zaps everything", "[zap]") {
  HostPlatform p;
  TestVm vm(p);
  REQUIRE(vm.add_slot(1, 0, 8192, 1ull << 32, 1) == MemslotError::ok);
  TestVcpu v(vm);
  for (gfn_t g = 0; g < 8192; g++) REQUIRE(vm.fault(v, g) == FaultOutcome::fixed);
  p.set_yield_probability(0.5);
  const uint64_t flushes = p.flush_count();
  vm.mmu.zap_range(0, 1, 8191);
  p.set_yield_probability(0);
  // No flush at the yields (the unlink generation covers the window, zap.cpp): one at the end.
  REQUIRE(p.flush_count() == flushes + 1);
  uint64_t counts[4];
  vm.mmu.count_leaves(0, counts);
  REQUIRE(counts[1] == 2);
  REQUIRE(vm.mmu.stats().leaves[1] == 2);
}

TEST_CASE("memslot update: delete, move, set_flags, errors", "[zap][memslot]") {
  HostPlatform p;
  {
    TestVm vm(p);
    REQUIRE(vm.add_slot(1, 0, 1024, 1ull << 32, 2) == MemslotError::ok);
    REQUIRE(vm.add_slot(2, 4096, 1024, 1ull << 33, 2) == MemslotError::ok);
    TestVcpu v(vm);
    for (gfn_t g = 0; g < 1024; g += 100) REQUIRE(vm.fault(v, g, 3) != FaultOutcome::retry);
    for (gfn_t g = 4096; g < 5120; g += 100) REQUIRE(vm.fault(v, g, 3) != FaultOutcome::retry);
    REQUIRE(vm.mmu.stats().leaves[2] == 4);

    SECTION("delete") {
      const uint64_t flushes = p.flush_count();
      REQUIRE(vm.mmu.update_memslot(MemslotOp::remove(0, 1)) == MemslotError::ok);
      REQUIRE(p.flush_count() == flushes + 1);  // done means flushed
      REQUIRE(vm.leaf(v, 0).second == 0);
      REQUIRE(vm.leaf(v, 4096).second == 2);
      REQUIRE(vm.fault(v, 5) == FaultOutcome::unbacked);
    }
    SECTION("move") {
      REQUIRE(vm.mmu.update_memslot(MemslotOp::move(0, 1, 8192)) == MemslotError::ok);
      REQUIRE(vm.leaf(v, 0).second == 0);
      REQUIRE(vm.fault(v, 5) == FaultOutcome::unbacked);
      REQUIRE(vm.fault(v, 8192 + 5) == FaultOutcome::fixed);
      REQUIRE(spte::pfn_addr(vm.leaf(v, 8192 + 5).first) == (1ull << 32));
    }
    SECTION("set_flags read-only, then writable again") {
      REQUIRE(vm.mmu.update_memslot(MemslotOp::set_flags(0, 2, Memslot::kReadOnly)) == MemslotError::ok);
      REQUIRE(vm.leaf(v, 4096).second == 0);
      REQUIRE(vm.fault(v, 4096, spte::kAccWrite) == FaultOutcome::write_protected);
      REQUIRE(vm.fault(v, 4096, spte::kAccRead) == FaultOutcome::fixed);
      REQUIRE((vm.leaf(v, 4096).first & spte::kWrite) == 0);
      REQUIRE(vm.mmu.update_memslot(MemslotOp::set_flags(0, 2, 0)) == MemslotError::ok);
      REQUIRE(vm.fault(v, 4096, spte::kAccWrite) == FaultOutcome::fixed);
      REQUIRE((vm.leaf(v, 4096).first & spte::kWrite) != 0);
    }
    SECTION("invalid changes are refused and change nothing") {
      const uint64_t flushes = p.flush_count();
      REQUIRE(vm.add_slot(3, 1000, 100, 1ull << 34, 1) == MemslotError::overlap);
      REQUIRE(vm.add_slot(3, 20000, 0, 1ull << 34, 1) == MemslotError::zero_size);
      REQUIRE(vm.add_slot(3, 20000, 10, (1ull << 34) + 1, 1) == MemslotError::misaligned);
      REQUIRE(vm.add_slot(3, 20000, 10, 1ull << 34, 1, 0, 7) == MemslotError::bad_address_space);
      REQUIRE(vm.mmu.update_memslot(MemslotOp::remove(0, 99)) == MemslotError::no_such_slot);
      REQUIRE(vm.mmu.update_memslot(MemslotOp::move(0, 1, 4000)) == MemslotError::overlap);
      REQUIRE(p.flush_count() == flushes);
      REQUIRE(vm.leaf(v, 0).second == 2);
    }
    REQUIRE(vm.check_all_roots(vm.slot_refs()).empty());
  }
  REQUIRE(p.live_pages() == 0);
  REQUIRE(p.errors() == 0);
}

TEST_CASE("aging: test-and-clear Accessed, counts per level", "[age]") {
  HostPlatform p;
  TestVm vm(p);
  REQUIRE(vm.add_slot(1, 0, kPagesPer2M * 2, 1ull << 32, 2) == MemslotError::ok);
  REQUIRE(vm.add_slot(2, kPagesPer2M * 2, 64, 1ull << 33, 1) == MemslotError::ok);
  TestVcpu v(vm);
  REQUIRE(vm.fault(v, 1) == FaultOutcome::fixed);
  for (gfn_t g = 0; g < 10; g++) REQUIRE(vm.fault(v, kPagesPer2M * 2 + g) == FaultOutcome::fixed);
  REQUIRE(vm.mmu.age_range(0, 0, ~gfn_t{0}) == 0);
  // The CPU sets Accessed when it uses a translation: simulate it on three leaves.
  for (gfn_t g : {gfn_t{1}, kPagesPer2M * 2 + 3, kPagesPer2M * 2 + 4}) {
    spte_t* t = v.root()->table;
    int level = 4;
    for (;; level--) {
      spte_t& e = t[spte::index_of(g, level)];
      if (spte::is_leaf(e, level)) {
        __atomic_fetch_or(&e, spte::kAccessed, __ATOMIC_RELAXED);
        break;
      }
      t = static_cast<spte_t*>(p.phys_to_virt(spte::pfn_addr(e)));
    }
  }
  REQUIRE(vm.mmu.age_range(0, kPagesPer2M * 2 + 4, kPagesPer2M * 2 + 100) == 1);
  REQUIRE(vm.mmu.age_range(0, 0, ~gfn_t{0}) == 2);
  REQUIRE(vm.mmu.age_range(0, 0, ~gfn_t{0}) == 0);
  REQUIRE(vm.leaf(v, 1).second == 2);  // aging never unmaps
  uint64_t counts[4];
  vm.mmu.count_leaves(0, counts);
  REQUIRE(counts[1] == 10);
  REQUIRE(counts[2] == 1);
  REQUIRE(counts[3] == 0);
  MmuStats st = vm.mmu.stats();
  REQUIRE(st.leaves[1] == 10);
  REQUIRE(st.leaves[2] == 1);
}
