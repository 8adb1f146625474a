// The MMU's own account of its table pages (mmu/page_account.h) and the per-Mmu limit
// (MmuConfig::max_table_pages): pages freed later by the machine-wide epoch are credited back
// to the Mmu that held them, so a VM that zaps a lot does not run into its limit early.
#include <catch2/catch.hpp>

#include <thread>
#include <vector>

#include "tests/host/mmu_fixture.h"
#include "tests/stress/stress_seed.h"

using namespace mmu;
using hvtest::HostPlatform;
using hvtest::kGiB;
using hvtest::kPagesPer2M;
using hvtest::TestVcpu;
using hvtest::TestVm;

namespace {

MmuConfig limited(uint64_t pages) {
  MmuConfig cfg;
  cfg.max_table_pages = pages;
  return cfg;
}

// Touch one 4 KiB page per 2 MiB (one page table each) until the MMU runs out; returns how many
// faults were fixed. Bounded: fails the test if the limit never bites.
uint64_t fault_until_out_of_memory(TestVm& vm, TestVcpu& v, uint64_t limit) {
  uint64_t fixed = 0;
  for (gfn_t k = 0; k < 4 * limit; k++) {
    const FaultOutcome o = vm.fault(v, k * kPagesPer2M + 1);
    if (o == FaultOutcome::out_of_memory) return fixed;
    REQUIRE(o == FaultOutcome::fixed);
    fixed++;
    REQUIRE(vm.mmu.stats().table_pages_live <= limit);
  }
  FAIL("the page-table limit was never reached");
  return fixed;
}

// Fast zap, the deferred teardown run in bounded passes (as hv does before VM entry), and a
// full epoch barrier: every table page of the old root is freed after this. The vCPU loads its
// fresh root only then: at the limit, the old tree's pages must come back first to make room
// for it (the old root itself goes when the vCPU lets go of it, hence the second barrier).
void zap_everything(TestVm& vm, TestVcpu& v) {
  const uint64_t ticket = vm.mmu.invalidate_all_roots();
  for (int i = 0; i < 10000 && !vm.mmu.roots().teardowns_done_up_to(ticket); i++) vm.mmu.run_deferred_work(64);
  REQUIRE(vm.mmu.roots().teardowns_done_up_to(ticket));
  vm.epoch.barrier();
  REQUIRE(vm.mmu.vcpu_load_root(v) != 0);  // drops the old root, takes a fresh one
  vm.epoch.barrier();
}

}  // namespace

TEST_CASE("table limit: out of memory at the limit, every page credited back after zap and epoch",
          "[mmu][limit]") {
  constexpr uint64_t kLimit = 16;
  HostPlatform p;
  TestVm vm(p, limited(kLimit));
  // 4 KiB leaves only, over 64 MiB: every 2 MiB needs a page table of its own.
  REQUIRE(vm.add_slot(1, 0, 32 * kPagesPer2M, 4 * kGiB, 1) == MemslotError::ok);
  TestVcpu v(vm);
  REQUIRE(vm.mmu.stats().table_pages_live == 0);
  REQUIRE(vm.mmu.vcpu_load_root(v) != 0);
  const uint64_t baseline = vm.mmu.stats().table_pages_live;
  REQUIRE(baseline == 2);  // the root table and its Root object
  REQUIRE(vm.mmu.stats().table_pages_limit == kLimit);

  const uint64_t first = fault_until_out_of_memory(vm, v, kLimit);
  REQUIRE(first > 0);
  MmuStats s = vm.mmu.stats();
  REQUIRE(s.table_pages_live <= kLimit);
  REQUIRE(s.table_pages_refused > 0);
  REQUIRE(s.faults[static_cast<int>(FaultOutcome::out_of_memory)] >= 1);
  // The refusal changed nothing: the pages already mapped are still there.
  REQUIRE(vm.leaf(v, 1).second == 1);

  // The platform had plenty of memory: only the limit refused pages.
  const uint64_t platform_live = p.live_pages();
  zap_everything(vm, v);
  s = vm.mmu.stats();
  REQUIRE(s.tables_live == 0);
  REQUIRE(s.pages_awaiting_reclaim == 0);
  // Back to the baseline: the old root's tables went through the epoch and were credited back
  // (an out_of_memory fault leaves the page cache empty, so nothing else is held).
  REQUIRE(s.table_pages_live == baseline);
  REQUIRE(p.live_pages() < platform_live);

  // And the VM can use its whole allowance again, not just what was never freed.
  const uint64_t second = fault_until_out_of_memory(vm, v, kLimit);
  REQUIRE(second == first);
  REQUIRE(vm.check_all_roots(vm.slot_refs()).empty());
}

TEST_CASE("table limit: repeated fast zaps never use up the allowance", "[mmu][limit]") {
  constexpr uint64_t kLimit = 12;
  HostPlatform p;
  TestVm vm(p, limited(kLimit));
  REQUIRE(vm.add_slot(1, 0, 32 * kPagesPer2M, 4 * kGiB, 1) == MemslotError::ok);
  TestVcpu v(vm);
  // Each round builds tables well under the limit and zaps them; without the credit the count
  // would grow by the tables of every round and hit the limit within a few rounds.
  for (int round = 0; round < 20; round++) {
    for (gfn_t k = 0; k < 4; k++) REQUIRE(vm.fault(v, k * kPagesPer2M + 1) == FaultOutcome::fixed);
    zap_everything(vm, v);
  }
  REQUIRE(vm.mmu.stats().table_pages_refused == 0);
}

TEST_CASE("table limit: no limit counts the same pages and refuses none", "[mmu][limit]") {
  HostPlatform p;
  TestVm vm(p);
  REQUIRE(vm.add_slot(1, 0, 32 * kPagesPer2M, 4 * kGiB, 1) == MemslotError::ok);
  TestVcpu v(vm);
  for (gfn_t k = 0; k < 32; k++) REQUIRE(vm.fault(v, k * kPagesPer2M + 1) == FaultOutcome::fixed);
  MmuStats s = vm.mmu.stats();
  REQUIRE(s.table_pages_limit == 0);
  REQUIRE(s.table_pages_refused == 0);
  // Root (2), PDPT, PD, 32 page tables, and whatever the page cache holds (at most 8).
  REQUIRE(s.table_pages_live >= 2 + 2 + 32);
  REQUIRE(s.table_pages_live <= 2 + 2 + 32 + PageCache::kCapacity);
  zap_everything(vm, v);
  REQUIRE(vm.mmu.stats().table_pages_live <= 2 + PageCache::kCapacity);
}

TEST_CASE("table limit: two MMUs on one epoch are credited separately", "[mmu][limit]") {
  // Pages of both MMUs retired on the same CPU, interleaved: each page batch of the epoch
  // credits only the account its pages were charged to.
  HostPlatform p;
  Epoch epoch(p);
  Memslots slots_a(p, epoch, MemslotConfig{46}), slots_b(p, epoch, MemslotConfig{46});
  Mmu a(p, epoch, slots_a, limited(64)), b(p, epoch, slots_b, MmuConfig{});
  for (Mmu* m : {&a, &b}) {
    Memslot s;
    s.id = 1;
    s.base_gfn = 0;
    s.npages = 32 * kPagesPer2M;
    s.backing_hpa = 4 * kGiB;
    s.max_level = 1;
    REQUIRE(m->update_memslot(MemslotOp::create(s)) == MemslotError::ok);
  }
  VcpuMmu va, vb;
  a.vcpu_init(va, 0);
  b.vcpu_init(vb, 0);
  auto fault = [](Mmu& m, VcpuMmu& v, gfn_t gfn) {
    FaultOutcome o = FaultOutcome::retry;
    for (int i = 0; i < 100 && o == FaultOutcome::retry; i++) {
      REQUIRE(m.vcpu_load_root(v) != 0);
      o = m.map(v, gfn, spte::kAccRead);
    }
    return o;
  };
  for (int round = 0; round < 3; round++) {
    for (gfn_t k = 0; k < 8; k++) {
      REQUIRE(fault(a, va, k * kPagesPer2M + 1) == FaultOutcome::fixed);
      REQUIRE(fault(b, vb, k * kPagesPer2M + 1) == FaultOutcome::fixed);
    }
    // Interleave the retirements: a's teardown, b's teardown, a's ... on this one CPU.
    const uint64_t ta = a.invalidate_all_roots(), tb = b.invalidate_all_roots();
    REQUIRE(a.vcpu_load_root(va) != 0);
    REQUIRE(b.vcpu_load_root(vb) != 0);
    for (int i = 0; i < 10000 && !(a.roots().teardowns_done_up_to(ta) && b.roots().teardowns_done_up_to(tb)); i++) {
      a.run_deferred_work(8);
      b.run_deferred_work(8);
    }
    REQUIRE(a.roots().teardowns_done_up_to(ta));
    REQUIRE(b.roots().teardowns_done_up_to(tb));
  }
  epoch.barrier();
  a.vcpu_release(va);
  b.vcpu_release(vb);
  a.wait_for_teardown(a.invalidate_all_roots());
  b.wait_for_teardown(b.invalidate_all_roots());
  epoch.barrier();
  // No vCPU, no root, nothing waiting: both counts are exactly zero (an account credited with
  // the other's pages would be off in both directions).
  REQUIRE(a.stats().table_pages_live == 0);
  REQUIRE(b.stats().table_pages_live == 0);
}

// vCPUs on three threads fault all over a 4 KiB-only slot under a small limit while CPU 0 fast-
// zaps again and again and runs the teardown in bounded passes: the limit is never exceeded,
// faults keep succeeding after refusals (the epoch's frees come back to the account on
// whichever CPU runs them), and at the end the count is exactly zero.
TEST_CASE("table limit: concurrent faults and fast zaps stay within the limit and account exactly",
          "[mmu][limit][concurrency]") {
  const uint64_t seed = hvtest::stress_seed("table-limit-concurrency");
  constexpr unsigned kCpus = 4;
  constexpr uint64_t kLimit = 40;
  HostPlatform p(kCpus);
  Atomic<uint64_t> over{0}, fixed_after_refusal{0}, refusals{0}, bad{0};
  {
    TestVm vm(p, limited(kLimit));
    REQUIRE(vm.add_slot(1, 0, 256 * kPagesPer2M, 4 * kGiB, 1) == MemslotError::ok);
    Atomic<unsigned> done{0};
    VcpuMmu vcpus[kCpus];
    auto worker = [&](unsigned cpu) {
      hvtest::HostCpu as(cpu);
      hvtest::SplitMix rng(seed + cpu);
      VcpuMmu& v = vcpus[cpu];
      vm.mmu.vcpu_init(v, 0);
      bool refused = false;
      for (int i = 0; i < 2000; i++) {
        FaultOutcome o = FaultOutcome::out_of_memory;
        if (vm.mmu.vcpu_load_root(v) != 0) o = vm.mmu.map(v, rng.below(256) * kPagesPer2M + rng.below(512), spte::kAccRead);
        if (o == FaultOutcome::out_of_memory) {
          refused = true;
          refusals.fetch_add(1, Order::relaxed);
        } else if (o == FaultOutcome::fixed && refused) {
          fixed_after_refusal.fetch_add(1, Order::relaxed);
        } else if (o != FaultOutcome::fixed && o != FaultOutcome::spurious && o != FaultOutcome::retry) {
          bad.fetch_add(1, Order::relaxed);
        }
        if (vm.mmu.stats().table_pages_live > kLimit) over.fetch_add(1, Order::relaxed);
        vm.mmu.run_deferred_work(64);  // the safe point before the next entry
        vm.epoch.quiescent();
      }
      vm.mmu.vcpu_release(v);
      done.fetch_add(1, Order::release);
    };
    std::vector<std::thread> threads;
    for (unsigned cpu = 1; cpu < kCpus; cpu++) threads.emplace_back(worker, cpu);
    hvtest::SplitMix rng(seed);
    while (done.load(Order::acquire) < kCpus - 1) {
      vm.mmu.invalidate_all_roots();
      for (int k = 0; k < 20; k++) {
        vm.mmu.run_deferred_work(64);
        vm.epoch.quiescent();
        if (rng.below(4) == 0) std::this_thread::yield();
      }
    }
    for (std::thread& t : threads) t.join();
    vm.mmu.wait_for_teardown(vm.mmu.invalidate_all_roots());
    vm.epoch.barrier();
    REQUIRE(vm.mmu.stats().table_pages_live == 0);
  }
  REQUIRE(over.load(Order::relaxed) == 0);
  REQUIRE(bad.load(Order::relaxed) == 0);
  REQUIRE(refusals.load(Order::relaxed) > 0);
  REQUIRE(fixed_after_refusal.load(Order::relaxed) > 0);
}
