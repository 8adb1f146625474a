// split_huge_pages is yield-safe: it leaves its epoch section and, when the platform asks, drops
// the MMU lock at bounded intervals, resumes correctly from the root, and still splits
// everything (or stops at an invalidated root).
#include <catch2/catch.hpp>

#include "mmu/tdp_iter.h"
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

constexpr hpa_t kBacking = 2 * kGiB;  // 1 GiB-aligned: the slot may use 1 GiB leaves

// Every 4 KiB gfn of [start, end) is mapped by a leaf of at most `level` that maps the slot's
// backing (slot at gfn kPagesPer1G); returns the first gfn that is not, or `end`. `step` thins
// the check out (it walks from the root per gfn).
gfn_t first_unsplit(ProbeVm& vm, Root* root, gfn_t start, gfn_t end, int level, gfn_t step) {
  for (gfn_t g = start; g < end; g += step) {
    spte_t leaf = 0;
    int l = 0;
    if (!vm.mmu.lookup(root, g, &leaf, &l) || l > level) return g;
    const gfn_t first = spte::align_down(g, l);
    if (spte::pfn_addr(leaf) != kBacking + ((first - kPagesPer1G) << 12)) return g;
  }
  return end;
}

}  // namespace

TEST_CASE("split: a 1 GiB leaf split to 4 KiB with forced yields drops the lock and the section, and splits all",
          "[split][yield]") {
  HostPlatform host;
  ProbePlatform p(host);
  {
    ProbeVm vm(p);
    REQUIRE(vm.add_slot(1, kPagesPer1G, kPagesPer1G, kBacking, 3) == MemslotError::ok);
    hvtest::ProbeVcpu v(vm);
    REQUIRE(vm.fault(v, kPagesPer1G + 3) == FaultOutcome::fixed);
    REQUIRE(vm.mmu.stats().leaves[3] == 1);

    // At every yield point, with the lock given up: no epoch section is open on this CPU, and
    // another CPU could take the MMU lock exclusively (we take and release it here).
    uint64_t relax_calls = 0, lock_free = 0, outside_section = 0;
    bool armed = true;
    p.yield = true;
    p.on_relax = [&] {
      if (!armed) return;
      relax_calls++;
      if (!vm.epoch.in_read_section()) outside_section++;
      if (vm.mmu.lock().try_lock()) {
        lock_free++;
        vm.mmu.lock().unlock();
      }
    };
    const uint64_t asked_before = p.asked;
    REQUIRE(vm.mmu.split_huge_pages(v, kPagesPer1G, 2 * kPagesPer1G, 1));
    armed = false;
    const MmuStats st = vm.mmu.stats();
    // 1 split of the 1 GiB leaf, 512 of its 2 MiB children.
    REQUIRE(st.splits == 513);
    REQUIRE(st.eager_splits == 513);
    // Bounded intervals: at most two splits between yield points (two only right after a
    // restart, where the iterator may not yield yet), so at least 513 / 2 - 1 yields.
    INFO("yields " << st.split_yields << ", should_yield asked " << p.asked - asked_before);
    REQUIRE(st.split_yields >= 255);
    REQUIRE(relax_calls == st.split_yields);
    REQUIRE(lock_free == relax_calls);
    REQUIRE(outside_section == relax_calls);
    // Everything split, to the same memory; the counters agree with a walk.
    REQUIRE(first_unsplit(vm, v.root(), kPagesPer1G, 2 * kPagesPer1G, 1, 61) == 2 * kPagesPer1G);
    REQUIRE(first_unsplit(vm, v.root(), 2 * kPagesPer1G - 512, 2 * kPagesPer1G, 1, 1) == 2 * kPagesPer1G);
    REQUIRE(st.leaves[1] == kPagesPer1G);
    REQUIRE(st.leaves[2] == 0);
    REQUIRE(st.leaves[3] == 0);
    REQUIRE(hvtest::census(p, vm.mmu).compare(st).empty());
    p.on_relax = nullptr;
  }
  REQUIRE(host.live_pages() == 0);
  REQUIRE(host.check_quarantine() == 0);
  REQUIRE(host.errors() == 0);
}

TEST_CASE("split: without yields it leaves its section at the same points but keeps the lock", "[split][yield]") {
  HostPlatform host;
  ProbePlatform p(host);
  {
    ProbeVm vm(p);
    REQUIRE(vm.add_slot(1, kPagesPer1G, kPagesPer1G, kBacking, 3) == MemslotError::ok);
    hvtest::ProbeVcpu v(vm);
    REQUIRE(vm.fault(v, kPagesPer1G) == FaultOutcome::fixed);
    p.yield = false;
    const uint64_t asked_before = p.asked;
    // 1 GiB -> 2 MiB -> 4 KiB over the first 64 MiB: 1 + 32 splits.
    REQUIRE(vm.mmu.split_huge_pages(v, kPagesPer1G, kPagesPer1G + 32 * kPagesPer2M, 1));
    const MmuStats st = vm.mmu.stats();
    REQUIRE(st.eager_splits == 33);
    REQUIRE(st.split_yields == 0);
    // It asked at every yield point (at least every second split) and was told to go on.
    REQUIRE(p.asked - asked_before >= 15);
    REQUIRE(first_unsplit(vm, v.root(), kPagesPer1G, kPagesPer1G + 32 * kPagesPer2M, 1, 7) ==
            kPagesPer1G + 32 * kPagesPer2M);
    // Outside the range: still 2 MiB leaves.
    spte_t leaf;
    int level = 0;
    REQUIRE(vm.mmu.lookup(v.root(), kPagesPer1G + 32 * kPagesPer2M, &leaf, &level));
    REQUIRE(level == 2);
    REQUIRE(st.leaves[1] == 32 * 512);
    REQUIRE(st.leaves[2] == 512 - 32);
    REQUIRE(hvtest::census(p, vm.mmu).compare(st).empty());
  }
  REQUIRE(host.live_pages() == 0);
  REQUIRE(host.errors() == 0);
}

TEST_CASE("split: the tree changes while it has yielded; the walk resumes from the root and splits what is left",
          "[split][yield]") {
  HostPlatform host;
  ProbePlatform p(host);
  {
    ProbeVm vm(p);
    REQUIRE(vm.add_slot(1, kPagesPer1G, kPagesPer1G, kBacking, 3) == MemslotError::ok);
    hvtest::ProbeVcpu v(vm);
    REQUIRE(vm.fault(v, kPagesPer1G) == FaultOutcome::fixed);
    REQUIRE(vm.mmu.split_huge_pages(v, kPagesPer1G, 2 * kPagesPer1G, 2));  // 512 2 MiB leaves
    REQUIRE(vm.mmu.stats().leaves[2] == 512);

    // At the 5th yield, zap 2 MiB frames 40..47 (ahead of the walk), the 2 MiB frame 1
    // (behind it) and replace frame 60 by a table of 4 KiB leaves from a fault: the walk must
    // not touch freed tables (the host platform poisons them), must split what is still there,
    // and leave the zapped frames empty.
    unsigned yields = 0;
    bool armed = true;
    p.yield = true;
    p.on_relax = [&] {
      if (!armed || ++yields != 5) return;
      vm.mmu.zap_range(0, kPagesPer1G + 40 * kPagesPer2M, kPagesPer1G + 48 * kPagesPer2M);
      vm.mmu.zap_range(0, kPagesPer1G + kPagesPer2M, kPagesPer1G + 2 * kPagesPer2M);
      vm.mmu.zap_range(0, kPagesPer1G + 60 * kPagesPer2M, kPagesPer1G + 61 * kPagesPer2M);
      vm.mmu.set_max_level(1);
      vm.mmu.map(v, kPagesPer1G + 60 * kPagesPer2M + 9, spte::kAccRead);
      vm.mmu.set_max_level(3);
    };
    REQUIRE(vm.mmu.split_huge_pages(v, kPagesPer1G, kPagesPer1G + 64 * kPagesPer2M, 1));
    armed = false;
    p.on_relax = nullptr;
    REQUIRE(yields >= 5);
    for (unsigned f = 0; f < 64; f++) {
      const gfn_t g = kPagesPer1G + f * kPagesPer2M;
      spte_t leaf;
      int level = 0;
      const bool mapped = vm.mmu.lookup(v.root(), g + 9, &leaf, &level);
      INFO("2 MiB frame " << f);
      if (f == 1 || (f >= 40 && f < 48)) {
        REQUIRE(!mapped);
      } else {
        REQUIRE(mapped);
        REQUIRE(level == 1);
        REQUIRE(spte::pfn_addr(leaf) == kBacking + ((g + 9 - kPagesPer1G) << 12));
      }
    }
    const MmuStats st = vm.mmu.stats();
    // Frames 0, 2..39, 48..59, 61..63 split (54); frame 60 holds the one faulted 4 KiB leaf.
    REQUIRE(st.leaves[1] == 54 * 512 + 1);
    REQUIRE(st.leaves[2] == 512 - 64);
    REQUIRE(hvtest::census(p, vm.mmu).compare(st).empty());
  }
  REQUIRE(host.live_pages() == 0);
  REQUIRE(host.check_quarantine() == 0);
  REQUIRE(host.errors() == 0);
}

TEST_CASE("split: a fast zap while it has yielded stops it; the root's teardown removes everything",
          "[split][yield]") {
  HostPlatform host;
  ProbePlatform p(host);
  {
    ProbeVm vm(p);
    REQUIRE(vm.add_slot(1, kPagesPer1G, kPagesPer1G, kBacking, 3) == MemslotError::ok);
    hvtest::ProbeVcpu v(vm);
    REQUIRE(vm.fault(v, kPagesPer1G) == FaultOutcome::fixed);
    unsigned yields = 0;
    bool armed = true;
    p.yield = true;
    p.on_relax = [&] {
      if (armed && ++yields == 10) {
        // A fast zap from "another CPU", and a first teardown step before we get the lock back.
        vm.mmu.invalidate_all_roots();
        vm.mmu.run_deferred_work(600);
      }
    };
    REQUIRE(vm.mmu.split_huge_pages(v, kPagesPer1G, 2 * kPagesPer1G, 1));
    armed = false;
    p.on_relax = nullptr;
    const MmuStats st = vm.mmu.stats();
    REQUIRE(st.split_yields == 10);  // it stopped at the yield where the root became invalid
    REQUIRE(st.eager_splits < 30);
  }
  REQUIRE(host.live_pages() == 0);
  REQUIRE(host.check_quarantine() == 0);
  REQUIRE(host.errors() == 0);
}

TEST_CASE("split: an unaligned range, split over several page-cache refills, stays inside its 2 MiB frames",
          "[split]") {
  HostPlatform host;
  ProbePlatform p(host);
  {
    ProbeVm vm(p);
    REQUIRE(vm.add_slot(1, kPagesPer1G, kPagesPer1G, kBacking, 3) == MemslotError::ok);
    hvtest::ProbeVcpu v(vm);
    REQUIRE(vm.fault(v, kPagesPer1G) == FaultOutcome::fixed);
    // 21 frames touched (from the middle of frame 0 to the middle of frame 20): 22 splits with
    // the 1 GiB one, more than two cache fills (PageCache::kCapacity pages each).
    static_assert(PageCache::kCapacity < 11);
    const gfn_t start = kPagesPer1G + 5, end = kPagesPer1G + 20 * kPagesPer2M + 7;
    REQUIRE(vm.mmu.split_huge_pages(v, start, end, 1));
    const MmuStats st = vm.mmu.stats();
    REQUIRE(st.eager_splits == 22);
    REQUIRE(st.leaves[1] == 21 * 512);
    REQUIRE(st.leaves[2] == 512 - 21);
    REQUIRE(first_unsplit(vm, v.root(), kPagesPer1G, kPagesPer1G + 21 * kPagesPer2M, 1, 1) ==
            kPagesPer1G + 21 * kPagesPer2M);
    REQUIRE(hvtest::census(p, vm.mmu).compare(st).empty());
  }
  REQUIRE(host.live_pages() == 0);
  REQUIRE(host.errors() == 0);
}
