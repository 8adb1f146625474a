// The default page-table limit of a VM (hv/pt_limit.h), checked against the real MMU on the
// host platform: full_map_pages() bounds what one full 4 KiB mapping of some memslots really
// costs (and not by much), the default limit lets a VM rebuild all of its mapping while an old
// copy waits for teardown, and a VM that fast-zaps in a loop without running teardown stays under
// it (the MMU's fast-zap backpressure keeps at most a bounded number of old copies).
#include <catch2/catch.hpp>

#include <vector>

#include "hv/pt_limit.h"
#include "mmu/page_cache.h"
#include "tests/host/mmu_fixture.h"

using namespace mmu;
using hvtest::HostPlatform;
using hvtest::kGiB;
using hvtest::TestVcpu;
using hvtest::TestVm;

namespace {

struct Range {
  gfn_t base;
  uint64_t npages;
};

// Three awkward ranges: one starts 4 KiB past a 2 MiB boundary, one straddles a 1 GiB boundary,
// one straddles a 512 GiB boundary. Each touches one table more per level than its size alone.
// The first is large enough that the limit's fixed slack is small beside one copy.
const std::vector<Range> kRanges = {
    {1, 32768},                                    // [4 KiB, 128 MiB + 4 KiB)
    {(kGiB >> kPageShift) - 512, 1024},            // [1 GiB - 2 MiB, 1 GiB + 2 MiB)
    {((512 * kGiB) >> kPageShift) - 1024, 2048},   // [512 GiB - 4 MiB, 512 GiB + 4 MiB)
};

uint64_t total_bytes(const std::vector<Range>& rs) {
  uint64_t b = 0;
  for (const Range& r : rs) b += r.npages << kPageShift;
  return b;
}

void add_ranges(TestVm& vm, const std::vector<Range>& rs) {
  uint32_t id = 1;
  for (const Range& r : rs) REQUIRE(vm.add_slot(id++, r.base, r.npages, 4 * kGiB, 1) == MemslotError::ok);
}

// Faults every page of every range in with 4 KiB leaves; false when the page limit refused a
// page: the fault's own table (out_of_memory) or the fresh root a vCPU needs after a fast zap
// (no root: the fault keeps saying retry).
bool map_all(TestVm& vm, TestVcpu& v, const std::vector<Range>& rs) {
  for (const Range& r : rs)
    for (uint64_t i = 0; i < r.npages; i++) {
      const FaultOutcome o = vm.fault(v, r.base + i);
      if (o == FaultOutcome::fixed) continue;
      REQUIRE((o == FaultOutcome::out_of_memory || o == FaultOutcome::retry));
      REQUIRE(vm.mmu.stats().table_pages_refused > 0);
      return false;
    }
  return true;
}

}  // namespace

TEST_CASE("pt limit: the formula's arithmetic", "[hv][pt-limit]") {
  using hv::pt_limit::full_map_pages;
  // 64 MiB in one range: 32 + 1 page tables, 1 + 1 directories, 1 + 1 PDPTs, root + object.
  REQUIRE(full_map_pages(64ull << 20, 1) == 33 + 2 + 2 + 2);
  // 4 GiB + 16 GiB in 25 ranges (a 1 GiB pool VM with hv.bench-zap-gib=16).
  REQUIRE(full_map_pages(20 * kGiB, 25) == (10240 + 25) + (20 + 25) + (1 + 25) + 2);
  REQUIRE(hv::pt_limit::default_limit(64ull << 20, 1) ==
          hv::pt_limit::kRootCopies * 39 + hv::pt_limit::kSlackPages);
  REQUIRE(hv::pt_limit::kPageCacheCapacity == PageCache::kCapacity);
}

TEST_CASE("pt limit: one full 4 KiB mapping fits in full_map_pages, with little to spare", "[hv][pt-limit]") {
  HostPlatform p;
  TestVm vm(p);
  add_ranges(vm, kRanges);
  TestVcpu v(vm);
  REQUIRE(map_all(vm, v, kRanges));
  const MmuStats s = vm.mmu.stats();
  REQUIRE(s.leaves[1] == 32768 + 1024 + 2048);
  // What the VM holds: its tree, the root and its object, and what the vCPU keeps stocked.
  const uint64_t formula = hv::pt_limit::full_map_pages(total_bytes(kRanges), kRanges.size());
  INFO("table pages live " << s.table_pages_live << ", tables " << s.tables_live << ", formula " << formula);
  REQUIRE(s.table_pages_live <= formula + PageCache::kCapacity);
  // Not a loose bound either: within one table per range and level of the real cost.
  REQUIRE(s.tables_live + 2 + 3 * kRanges.size() >= formula);
}

TEST_CASE("pt limit: the default lets a VM remap everything beside a copy awaiting teardown",
          "[hv][pt-limit]") {
  HostPlatform p;
  MmuConfig cfg;
  cfg.max_table_pages = hv::pt_limit::default_limit(total_bytes(kRanges), kRanges.size());
  TestVm vm(p, cfg);
  add_ranges(vm, kRanges);
  TestVcpu v(vm);
  uint64_t previous = 0;
  for (int round = 0; round < 6; round++) {
    // Map everything while the previous copy (invalidated by the last fast zap) is still
    // whole; only then let its teardown run, and invalidate this copy in turn.
    REQUIRE(map_all(vm, v, kRanges));
    if (previous) {
      for (int i = 0; i < 100000 && !vm.mmu.roots().teardowns_done_up_to(previous); i++) vm.mmu.run_deferred_work(64);
      REQUIRE(vm.mmu.roots().teardowns_done_up_to(previous));
      vm.epoch.barrier();
    }
    previous = vm.mmu.invalidate_all_roots();
  }
  REQUIRE(vm.mmu.stats().table_pages_refused == 0);
}

TEST_CASE("pt limit: a VM that fast-zaps and refaults in a loop stays under the default limit",
          "[hv][pt-limit]") {
  HostPlatform p;
  MmuConfig cfg;
  cfg.max_table_pages = hv::pt_limit::default_limit(total_bytes(kRanges), kRanges.size());
  TestVm vm(p, cfg);
  add_ranges(vm, kRanges);
  TestVcpu v(vm);
  // The hostile pattern of issue 9: fast zap after fast zap while faulting everything in, and
  // no safe point ever runs the teardown. Before the MMU's backpressure, full copies piled up
  // until the limit refused a page (after about kRootCopies copies). Now invalidate_all_roots()
  // finishes the teardown of all but the last MmuConfig::kDefaultTeardownBacklog invalidations itself,
  // so at most that many old copies coexist with the live one, which the default leaves room
  // for (kRootCopies >= kDefaultTeardownBacklog + 1, checked in hv/guest_mmu.cpp).
  unsigned copies = 0;
  uint64_t max_live = 0;
  while (copies < 20 && map_all(vm, v, kRanges)) {
    copies++;
    const uint64_t live = vm.mmu.stats().table_pages_live;
    if (live > max_live) max_live = live;
    vm.mmu.invalidate_all_roots();
  }
  INFO("full copies mapped: " << copies << ", most pages at once " << max_live << " of " << cfg.max_table_pages);
  REQUIRE(copies == 20);
  REQUIRE(vm.mmu.stats().table_pages_refused == 0);
  REQUIRE(max_live <= cfg.max_table_pages);
  vm.mmu.wait_for_teardown(vm.mmu.invalidate_all_roots());
}
