// The fault path: level choice, outcomes, hostile gfns, out of memory, split, replacement.
#include <catch2/catch.hpp>

#include "tests/host/mmu_fixture.h"

using namespace mmu;
using hvtest::HostPlatform;
using hvtest::kGiB;
using hvtest::kPagesPer1G;
using hvtest::kPagesPer2M;
using hvtest::TestVm;

namespace {
constexpr unsigned kR = spte::kAccRead, kW = spte::kAccWrite, kX = spte::kAccExec;
}

TEST_CASE("fault: 4K fault installs tables and leaf, second one is spurious", "[fault]") {
  HostPlatform p;
  {
    TestVm vm(p);
    REQUIRE(vm.add_slot(1, 0x100, 64, 0x7000'0000, 1) == MemslotError::ok);
    hvtest::TestVcpu v(vm);
    REQUIRE(vm.mmu.vcpu_load_root(v) != 0);
    REQUIRE(vm.mmu.map(v, 0x105, kR | kW) == FaultOutcome::fixed);
    auto [s, level] = vm.leaf(v, 0x105);
    REQUIRE(level == 1);
    REQUIRE(spte::pfn_addr(s) == 0x7000'0000 + 5 * 4096);
    REQUIRE(spte::leaf_access(s) == (kR | kW | kX));
    REQUIRE(vm.mmu.map(v, 0x105, kW) == FaultOutcome::spurious);
    MmuStats st = vm.mmu.stats();
    REQUIRE(st.leaves[1] == 1);
    REQUIRE(st.tables_live == 3);
    REQUIRE(st.faults[int(FaultOutcome::fixed)] == 1);
    REQUIRE(st.faults[int(FaultOutcome::spurious)] == 1);
    REQUIRE(vm.check_all_roots(vm.slot_refs()).empty());
  }
  REQUIRE(p.live_pages() == 0);
  REQUIRE(p.errors() == 0);
}

TEST_CASE("fault: level chosen by slot alignment, backing and per-VM maximum", "[fault]") {
  HostPlatform p;
  TestVm vm(p);
  // Slot A: 2 GiB at gfn 1 GiB, backed 1 GiB-aligned with 1 GiB pages: 1 GiB leaves.
  REQUIRE(vm.add_slot(1, kPagesPer1G, 2 * kPagesPer1G, 4 * kGiB, 3) == MemslotError::ok);
  // Slot B: same but backing 4 KiB off alignment: only 4 KiB leaves.
  REQUIRE(vm.add_slot(2, 4 * kPagesPer1G, kPagesPer1G, 8 * kGiB + 4096, 3) == MemslotError::ok);
  // Slot C: 2 MiB aligned, 2 MiB backing pages, 3 MiB long: 2 MiB then 4 KiB at the tail.
  REQUIRE(vm.add_slot(3, 6 * kPagesPer1G, 3 * 256, 12 * kGiB, 2) == MemslotError::ok);
  // Slot D: 1 GiB aligned and long, but its backing only has 2 MiB pages.
  REQUIRE(vm.add_slot(4, 8 * kPagesPer1G, kPagesPer1G, 16 * kGiB, 2) == MemslotError::ok);
  hvtest::TestVcpu v(vm);
  REQUIRE(vm.fault(v, kPagesPer1G + 12345) == FaultOutcome::fixed);
  REQUIRE(vm.leaf(v, kPagesPer1G + 12345).second == 3);
  REQUIRE(spte::pfn_addr(vm.leaf(v, kPagesPer1G).first) == 4 * kGiB);
  REQUIRE(vm.fault(v, 4 * kPagesPer1G + 700) == FaultOutcome::fixed);
  REQUIRE(vm.leaf(v, 4 * kPagesPer1G + 700).second == 1);
  REQUIRE(vm.fault(v, 6 * kPagesPer1G + 3) == FaultOutcome::fixed);
  REQUIRE(vm.leaf(v, 6 * kPagesPer1G + 3).second == 2);
  REQUIRE(vm.fault(v, 6 * kPagesPer1G + 700) == FaultOutcome::fixed);  // last 1 MiB: not a full 2M
  REQUIRE(vm.leaf(v, 6 * kPagesPer1G + 700).second == 1);
  REQUIRE(vm.fault(v, 8 * kPagesPer1G + 5) == FaultOutcome::fixed);
  REQUIRE(vm.leaf(v, 8 * kPagesPer1G + 5).second == 2);
  // Per-VM maximum: 2 MiB, then 4 KiB, for new faults.
  vm.mmu.set_max_level(2);
  REQUIRE(vm.fault(v, 2 * kPagesPer1G + 9) == FaultOutcome::fixed);
  REQUIRE(vm.leaf(v, 2 * kPagesPer1G + 9).second == 2);
  vm.mmu.set_max_level(1);
  REQUIRE(vm.fault(v, 2 * kPagesPer1G + kPagesPer2M * 3) == FaultOutcome::fixed);
  REQUIRE(vm.leaf(v, 2 * kPagesPer1G + kPagesPer2M * 3).second == 1);
  REQUIRE(vm.check_all_roots(vm.slot_refs()).empty());
}

TEST_CASE("fault: hostile and unbacked gfns never crash and change nothing", "[fault]") {
  HostPlatform p;
  TestVm vm(p);
  REQUIRE(vm.add_slot(1, 0, 16, 0x1000'0000, 1) == MemslotError::ok);
  hvtest::TestVcpu v(vm);
  vm.mmu.vcpu_load_root(v);
  const uint64_t pages_before = p.live_pages();
  for (gfn_t g : {gfn_t{16}, gfn_t{1} << 20, (gfn_t{1} << 34) - 1}) {
    REQUIRE(vm.mmu.map(v, g, kR) == FaultOutcome::unbacked);
  }
  for (gfn_t g : {gfn_t{1} << 34, gfn_t{1} << 36, gfn_t{1} << 40, ~gfn_t{0}, ~gfn_t{0} >> 12}) {
    REQUIRE(vm.mmu.map(v, g, kR | kW | kX) == FaultOutcome::bad_gfn);
  }
  REQUIRE(vm.mmu.map(v, 3, 0xFFFF'FFFF) == FaultOutcome::fixed);  // junk access bits are masked
  REQUIRE(p.live_pages() <= pages_before + 4);  // 3 tables, maybe a cached spare
  REQUIRE(vm.check_all_roots(vm.slot_refs()).empty());
}

TEST_CASE("fault: read-only slot maps without W and reports writes", "[fault]") {
  HostPlatform p;
  TestVm vm(p);
  REQUIRE(vm.add_slot(1, 0, 512, 0x4000'0000, 2, Memslot::kReadOnly) == MemslotError::ok);
  hvtest::TestVcpu v(vm);
  REQUIRE(vm.fault(v, 7, kW) == FaultOutcome::write_protected);
  REQUIRE(vm.leaf(v, 7).second == 0);
  REQUIRE(vm.fault(v, 7, kR | kX) == FaultOutcome::fixed);
  auto [s, level] = vm.leaf(v, 7);
  REQUIRE(level == 2);
  REQUIRE((s & spte::kWrite) == 0);
  REQUIRE((s & spte::kHostWritable) == 0);
  REQUIRE(vm.fault(v, 7, kW) == FaultOutcome::write_protected);
}

TEST_CASE("fault: out of memory is an outcome, and the MMU recovers", "[fault]") {
  HostPlatform p;
  {
    TestVm vm(p);
    REQUIRE(vm.add_slot(1, 0, 4096, 0x4000'0000, 1) == MemslotError::ok);
    hvtest::TestVcpu v(vm);
    REQUIRE(vm.mmu.vcpu_load_root(v) != 0);
    // Room for exactly one more page: not enough for the three tables of a first fault.
    p.set_page_limit(p.live_pages() + 1);
    REQUIRE(vm.mmu.map(v, 100, kR) == FaultOutcome::out_of_memory);
    REQUIRE(vm.check_all_roots(vm.slot_refs()).empty());
    // Nothing at all left: still a clean outcome.
    p.set_page_limit(p.live_pages());
    REQUIRE(vm.mmu.map(v, 100, kR) == FaultOutcome::out_of_memory);
    // A root cannot be created either: vcpu_load_root says so with 0.
    hvtest::TestVcpu v2(vm, 1);
    REQUIRE(vm.mmu.vcpu_load_root(v2) == 0);
    p.set_page_limit(0);
    REQUIRE(vm.fault(v, 100) == FaultOutcome::fixed);
    REQUIRE(vm.leaf(v, 100).second == 1);
    REQUIRE(vm.mmu.stats().faults[int(FaultOutcome::out_of_memory)] == 2);
    REQUIRE(vm.check_all_roots(vm.slot_refs()).empty());
  }
  REQUIRE(p.live_pages() == 0);
  REQUIRE(p.errors() == 0);
}

TEST_CASE("fault: a huge leaf lacking a permission is split, siblings keep theirs", "[fault][split]") {
  HostPlatform p;
  TestVm vm(p);
  REQUIRE(vm.add_slot(1, 0, kPagesPer2M, 0x4000'0000, 2) == MemslotError::ok);
  hvtest::TestVcpu v(vm);
  REQUIRE(vm.fault(v, 10) == FaultOutcome::fixed);
  REQUIRE(vm.leaf(v, 10).second == 2);
  // Take X away from the huge leaf (as a future "no-exec huge pages" policy would), and allow
  // only 4 KiB mappings: an exec fault must split, then grant X on its own 4 KiB page only.
  spte_t* table = v.root()->table;
  for (int l = 4; l > 2; l--) table = static_cast<spte_t*>(p.phys_to_virt(spte::pfn_addr(table[0])));
  table[0] &= ~spte::kExec;
  vm.mmu.set_max_level(1);
  const uint64_t tables = vm.mmu.stats().tables_live;
  REQUIRE(vm.fault(v, 10, kX) == FaultOutcome::fixed);
  REQUIRE(vm.leaf(v, 10).second == 1);
  REQUIRE((vm.leaf(v, 10).first & spte::kExec) != 0);
  REQUIRE((vm.leaf(v, 11).first & spte::kExec) == 0);
  REQUIRE(vm.leaf(v, 11).second == 1);
  REQUIRE(spte::pfn_addr(vm.leaf(v, 511).first) == 0x4000'0000 + 511 * 4096);
  MmuStats st = vm.mmu.stats();
  REQUIRE(st.splits == 1);
  REQUIRE(st.tables_live == tables + 1);
  REQUIRE(st.leaves[2] == 0);
  REQUIRE(st.leaves[1] == 512);
  REQUIRE(vm.check_all_roots(vm.slot_refs()).empty());
}

TEST_CASE("fault: eager split of 1 GiB leaves down to 4 KiB keeps every mapping", "[fault][split]") {
  HostPlatform p;
  TestVm vm(p);
  REQUIRE(vm.add_slot(1, kPagesPer1G, kPagesPer1G, 2 * kGiB, 3) == MemslotError::ok);
  hvtest::TestVcpu v(vm);
  REQUIRE(vm.fault(v, kPagesPer1G + 77) == FaultOutcome::fixed);
  REQUIRE(vm.leaf(v, kPagesPer1G).second == 3);
  const uint64_t flushes = vm.mmu.stats().flushes;
  REQUIRE(vm.mmu.split_huge_pages(v, kPagesPer1G, kPagesPer1G + 2 * kPagesPer2M, 1));
  REQUIRE(vm.leaf(v, kPagesPer1G + 5).second == 1);
  REQUIRE(vm.leaf(v, kPagesPer1G + kPagesPer2M + 5).second == 1);
  REQUIRE(vm.leaf(v, kPagesPer1G + 2 * kPagesPer2M + 5).second == 2);  // outside the range
  REQUIRE(vm.mmu.stats().flushes == flushes);  // same translations: no flush
  REQUIRE(vm.mmu.stats().splits == 3);
  REQUIRE(vm.check_all_roots(vm.slot_refs()).empty());
}

TEST_CASE("fault: tables left by a leaf zap are replaced by the huge leaf", "[fault]") {
  HostPlatform p;
  {
    TestVm vm(p);
    REQUIRE(vm.add_slot(1, 0, kPagesPer2M * 4, 0x4000'0000, 2) == MemslotError::ok);
    hvtest::TestVcpu v(vm);
    vm.mmu.set_max_level(1);
    for (gfn_t g = 0; g < 8; g++) REQUIRE(vm.fault(v, g) == FaultOutcome::fixed);
    vm.mmu.zap_range(0, 0, 4);  // half of them: the 4 KiB table stays, partly filled
    vm.mmu.set_max_level(2);
    const uint64_t flushes = vm.mmu.stats().flushes;
    REQUIRE(vm.fault(v, 2) == FaultOutcome::fixed);
    REQUIRE(vm.leaf(v, 2).second == 2);
    REQUIRE(vm.leaf(v, 6).second == 2);
    MmuStats st = vm.mmu.stats();
    REQUIRE(st.huge_replacements == 1);
    REQUIRE(st.leaves[1] == 0);
    REQUIRE(st.leaves[2] == 1);
    REQUIRE(st.flushes == flushes + 1);
    REQUIRE(vm.check_all_roots(vm.slot_refs()).empty());
    vm.epoch.barrier();
    REQUIRE(st.pages_awaiting_reclaim == 1);
    REQUIRE(vm.mmu.stats().pages_awaiting_reclaim == 0);
  }
  REQUIRE(p.live_pages() == 0);
  REQUIRE(p.check_quarantine() == 0);
  REQUIRE(p.errors() == 0);
}

TEST_CASE("fault: a memslot change in flight makes faults in its range retry", "[fault]") {
  HostPlatform p;
  TestVm vm(p);
  REQUIRE(vm.add_slot(1, 0, 1024, 0x4000'0000, 1) == MemslotError::ok);
  hvtest::TestVcpu v(vm);
  vm.mmu.vcpu_load_root(v);
  vm.mmu.invalidate_begin(0, 100, 200);
  REQUIRE(vm.mmu.map(v, 150, kR) == FaultOutcome::retry);
  REQUIRE(vm.mmu.map(v, 250, kR) == FaultOutcome::fixed);  // outside the range
  const uint64_t seq = vm.mmu.invalidate_seq();
  vm.mmu.invalidate_end();
  REQUIRE(vm.mmu.invalidate_seq() == seq + 1);
  REQUIRE(vm.mmu.map(v, 150, kR) == FaultOutcome::fixed);
}

TEST_CASE("fault: a huge leaf that would reach into an invalidated range waits too", "[fault]") {
  HostPlatform p;
  TestVm vm(p);
  REQUIRE(vm.add_slot(1, 0, 4 * kPagesPer2M, 0x4000'0000, 2) == MemslotError::ok);
  hvtest::TestVcpu v(vm);
  vm.mmu.vcpu_load_root(v);
  vm.mmu.invalidate_begin(0, 500, 501);  // inside the first 2 MiB frame
  REQUIRE(vm.mmu.map(v, 3, kR) == FaultOutcome::retry);  // its 2 MiB leaf would cover gfn 500
  REQUIRE(vm.mmu.map(v, kPagesPer2M + 3, kR) == FaultOutcome::fixed);
  vm.mmu.invalidate_end();
  REQUIRE(vm.mmu.map(v, 3, kR) == FaultOutcome::fixed);
}

// Mmu::lookup_slot_vcpu: the slot a vCPU found last is used again only while no memslot set
// was published since. After each kind of change, the next fault at the same gfn must see
// the change (not the copy of the slot it used a moment before).
TEST_CASE("fault: the vCPU's last slot is never used across a memslot change", "[fault][memslot]") {
  HostPlatform p;
  TestVm vm(p);
  hvtest::TestVcpu v(vm);
  REQUIRE(vm.add_slot(1, 0x100, 64, 0x7000'0000, 1) == MemslotError::ok);
  REQUIRE(vm.mmu.vcpu_load_root(v) != 0);
  REQUIRE(vm.mmu.map(v, 0x101, kR) == FaultOutcome::fixed);  // the slot is now the vCPU's last
  // Read-only: a write to a neighbour (not mapped yet) is refused, not installed writable.
  REQUIRE(vm.mmu.update_memslot(MemslotOp::set_flags(0, 1, Memslot::kReadOnly)) == MemslotError::ok);
  REQUIRE(vm.mmu.map(v, 0x102, kW) == FaultOutcome::write_protected);
  REQUIRE(vm.mmu.update_memslot(MemslotOp::set_flags(0, 1, 0)) == MemslotError::ok);
  REQUIRE(vm.mmu.map(v, 0x102, kW) == FaultOutcome::fixed);
  // Moved away: the old range is unbacked, the new one maps the same backing.
  REQUIRE(vm.mmu.update_memslot(MemslotOp::move(0, 1, 0x400)) == MemslotError::ok);
  REQUIRE(vm.mmu.vcpu_load_root(v) != 0);
  REQUIRE(vm.mmu.map(v, 0x103, kR) == FaultOutcome::unbacked);
  REQUIRE(vm.mmu.map(v, 0x403, kR) == FaultOutcome::fixed);
  REQUIRE(spte::pfn_addr(vm.leaf(v, 0x403).first) == 0x7000'0000 + 3 * 4096);
  // Removed and created again with other backing at the same place: the new backing.
  REQUIRE(vm.mmu.update_memslot(MemslotOp::remove(0, 1)) == MemslotError::ok);
  REQUIRE(vm.mmu.vcpu_load_root(v) != 0);
  REQUIRE(vm.mmu.map(v, 0x404, kR) == FaultOutcome::unbacked);
  REQUIRE(vm.add_slot(2, 0x400, 64, 0x9000'0000, 1) == MemslotError::ok);
  REQUIRE(vm.mmu.map(v, 0x405, kR) == FaultOutcome::fixed);
  REQUIRE(spte::pfn_addr(vm.leaf(v, 0x405).first) == 0x9000'0000 + 5 * 4096);
  // A second slot beside it: a gfn outside the last slot looks the set up again.
  REQUIRE(vm.add_slot(3, 0x800, 16, 0xA000'0000, 1) == MemslotError::ok);
  REQUIRE(vm.mmu.map(v, 0x801, kR) == FaultOutcome::fixed);
  REQUIRE(vm.mmu.map(v, 0x406, kR) == FaultOutcome::fixed);
  REQUIRE(vm.check_all_roots(vm.slot_refs()).empty());
}
