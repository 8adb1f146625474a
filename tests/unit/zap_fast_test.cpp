// The zap's fast paths (mmu/zap.cpp, issue 13 item 2): whole tables of 4 KiB leaves zapped in
// one loop, statistics added per batch, a plain store where no one reads the leaf's last A/D.
// Each test compares against what the slow path would have left: the tree (census), the
// counters, and the D bits a D-logged slot must not lose.
#include <catch2/catch.hpp>

#include <set>
#include <vector>

#include "tests/host/dirty_cpu.h"
#include "tests/host/mmu_fixture.h"
#include "tests/host/probe_platform.h"
#include "tests/host/tree_census.h"

using namespace mmu;
using hvtest::DirtyCpu;
using hvtest::HostPlatform;
using hvtest::kGiB;
using hvtest::kPagesPer2M;
using hvtest::TestVm;
using hvtest::TestVcpu;
using hvtest::TlbGeneration;

namespace {

constexpr gfn_t kBase = 8 * kPagesPer2M;
constexpr uint64_t kPages = 4 * kPagesPer2M;  // four tables of 4 KiB leaves
constexpr hpa_t kBacking = 4 * kGiB;

bool mapped_at(TestVm& vm, VcpuMmu& v, gfn_t g) { return vm.leaf(v, g).second != 0; }

}  // namespace

TEST_CASE("zap fast path: whole and partial tables, exact range, counters equal a census", "[zap]") {
  HostPlatform p;
  {
    TestVm vm(p);
    REQUIRE(vm.add_slot(1, kBase, kPages, kBacking, 1) == MemslotError::ok);
    hvtest::TestVcpu v(vm);
    for (gfn_t g = kBase; g < kBase + kPages; g++) REQUIRE(vm.fault(v, g) == FaultOutcome::fixed);
    REQUIRE(vm.mmu.stats().leaves[1] == kPages);
    const uint64_t zapped0 = vm.mmu.stats().zapped_leaves;
    // From the middle of table 0 to the middle of table 3: tables 1 and 2 whole (the loop over
    // a table), the ends entry by entry.
    const gfn_t start = kBase + 300, end = kBase + 3 * kPagesPer2M + 17;
    vm.mmu.zap_range(0, start, end);
    for (gfn_t g = kBase; g < kBase + kPages; g++) {
      INFO("gfn " << g);
      REQUIRE(mapped_at(vm, v, g) == (g < start || g >= end));
    }
    const MmuStats st = vm.mmu.stats();
    REQUIRE(st.leaves[1] == kPages - (end - start));
    REQUIRE(st.zapped_leaves - zapped0 == end - start);
    REQUIRE(hvtest::census(p, vm.mmu).compare(st) == "");
    // The tables stay (rule 4): faults reuse them.
    REQUIRE(vm.fault(v, kBase + kPagesPer2M + 5) == FaultOutcome::fixed);
  }
  REQUIRE(p.live_pages() == 0);
}

TEST_CASE("zap fast path: a D-logged slot keeps the D of every leaf dropped, whole tables too",
          "[zap][dirtylog]") {
  MmuConfig cfg;
  cfg.ept_ad = true;
  HostPlatform p;
  {
    TestVm vm(p, cfg);
    REQUIRE(vm.add_slot(1, kBase, kPages, kBacking, 1) == MemslotError::ok);
    VcpuMmu v;
    vm.mmu.vcpu_init(v, 0);
    TlbGeneration tlb;
    p.set_flush_hook([&](uint64_t) { tlb.flush(); });
    REQUIRE(vm.mmu.dirty_log_start(v, 0, 1, DirtyMode::dirty_bit) == MemslotError::ok);
    std::vector<uint64_t> bm(Mmu::dirty_log_words(kPages), 0);
    auto harvest = [&] {
      for (auto& w : bm) w = 0;
      uint64_t n = 0;
      REQUIRE(vm.mmu.dirty_log_harvest(v, 0, 1, bm.data(), bm.size(), &n) == MemslotError::ok);
      std::set<uint64_t> out;
      for (uint64_t i = 0; i < kPages; i++)
        if ((bm[i / 64] >> (i % 64)) & 1) out.insert(i);
      REQUIRE(out.size() == n);
      return out;
    };
    harvest();  // the start's "everything is dirty"
    DirtyCpu cpu(vm.mmu, v, tlb, kBase, kPages);
    // Map every page writable (and dirty), harvest (D cleared), then dirty a few again: the
    // zap then meets clean writable leaves (exchanged: a CPU could still set D) and dirty ones.
    for (uint64_t i = 0; i < kPages; i++) REQUIRE(cpu.write_faulting(i));
    REQUIRE(harvest().size() == kPages);
    const std::set<uint64_t> written = {1, 600, 700, 1023, 1500, 1536, 2047};
    for (uint64_t i : written) REQUIRE(cpu.write_faulting(i));
    // Tables 1 and 2 whole, part of table 0.
    vm.mmu.zap_range(0, kBase + 600, kBase + 3 * kPagesPer2M);
    REQUIRE(!mapped_at(vm, v, kBase + 700));
    REQUIRE(harvest() == written);
    p.set_flush_hook({});
    vm.mmu.vcpu_release(v);
  }
  REQUIRE(p.live_pages() == 0);
}

TEST_CASE("zap fast path: the lock is still offered between tables", "[zap][yield]") {
  HostPlatform host;
  hvtest::ProbePlatform p(host);
  {
    hvtest::ProbeVm vm(p);
    REQUIRE(vm.add_slot(1, kBase, kPages, kBacking, 1) == MemslotError::ok);
    hvtest::ProbeVcpu v(vm);
    for (gfn_t g = kBase; g < kBase + kPages; g++) REQUIRE(vm.fault(v, g) == FaultOutcome::fixed);
    uint64_t relax_calls = 0, lock_free = 0;
    p.yield = true;
    p.on_relax = [&] {
      relax_calls++;
      // Given up for real: another CPU could take the MMU lock exclusively now.
      if (vm.mmu.lock().try_lock()) {
        lock_free++;
        vm.mmu.lock().unlock();
      }
    };
    vm.mmu.zap_range(0, kBase, kBase + kPages);
    p.on_relax = nullptr;
    p.yield = false;
    // Four tables zapped whole, each in one loop: the walk asks after each (the loop counts its
    // 512 entries), so it yields at least between every two of them.
    REQUIRE(relax_calls >= 3);
    REQUIRE(lock_free == relax_calls);
    const MmuStats st = vm.mmu.stats();
    REQUIRE(st.leaves[1] == 0);
    REQUIRE(hvtest::census(p, vm.mmu).compare(st).empty());
  }
  REQUIRE(host.live_pages() == 0);
  REQUIRE(host.errors() == 0);
}
