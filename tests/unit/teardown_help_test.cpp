// Teardown that other CPUs help with: one vCPU fast-zaps in a
// loop and never reaches a safe point that runs deferred work (its queue only grows), another
// faults 4 KiB leaves under a page-table limit and runs deferred work before each entry as hv
// does (and, in the second section, Mmu::reclaim() when a fault is refused a page). The
// faulting vCPU must keep making progress, and the limit is never exceeded. Before the MMU
// helped (run_deferred_work ran only the caller's queue), the faulting vCPU got stuck in
// out_of_memory for good after about 50 faults: the old roots' tables stayed queued on CPU 0.
// The zapper's own backpressure (invalidate_all_roots finishes the teardown of all but the
// last MmuConfig::kDefaultTeardownBacklog invalidations) is what keeps the safe-point-only section
// moving; the helping shows in the steps run from CPU 0's queue by CPU 1.
#include <catch2/catch.hpp>

#include <thread>

#include "tests/host/mmu_fixture.h"

using namespace mmu;
using hvtest::HostPlatform;
using hvtest::kGiB;
using hvtest::TestVm;

namespace {

constexpr uint64_t kSlotPages = 16384;  // 64 MiB: 32 page tables' worth of 4 KiB leaves
constexpr uint64_t kLimit = 64;
constexpr unsigned kEntryBudget = 64;     // hv's budget before each VM entry
constexpr uint64_t kTarget = 2000;        // faults the vCPU must get fixed
constexpr uint64_t kStuck = 20000;        // this many refusals in a row: no progress
constexpr uint64_t kEntriesPerZap = 16;   // the vCPU runs at most this far ahead of the zaps

struct Counters {
  bool use_reclaim = false;
  uint64_t reclaims = 0, reclaim_units = 0, reclaim_pages = 0;
  Atomic<uint64_t> attempts{0};
  Atomic<uint64_t> zaps{0};
  Atomic<uint32_t> zapper_done{0};
  uint64_t fixed = 0, oom = 0, retry = 0, longest_refusal_run = 0, max_live = 0, over_limit = 0;
  bool stuck = false;
};

MmuConfig limited(uint64_t pages) {
  MmuConfig cfg;
  cfg.max_table_pages = pages;
  return cfg;
}

// The faulting vCPU, on CPU 1: safe point (deferred work, quiescent), load the root, fault.
void faulting_vcpu(TestVm& vm, Counters& c) {
  hvtest::HostCpu as(1);
  VcpuMmu v;
  vm.mmu.vcpu_init(v, 0);
  uint64_t next = 0, run = 0;
  while (c.fixed < kTarget) {
    const uint64_t n = c.attempts.fetch_add(1, Order::release);
    // Keep the zapper in the game however the threads are scheduled: at least one fast zap
    // per kEntriesPerZap entries.
    while (c.zaps.load(Order::acquire) < n / kEntriesPerZap && !c.zapper_done.load(Order::acquire))
      std::this_thread::yield();
    vm.mmu.run_deferred_work(kEntryBudget);
    vm.epoch.quiescent();
    FaultOutcome o = FaultOutcome::out_of_memory;
    if (vm.mmu.vcpu_load_root(v) != 0) o = vm.mmu.map(v, (next * 521) % kSlotPages, spte::kAccRead);
    const uint64_t live = vm.mmu.stats().table_pages_live;
    if (live > c.max_live) c.max_live = live;
    if (live > kLimit) c.over_limit++;
    if (o == FaultOutcome::out_of_memory) {
      c.oom++;
      if (c.use_reclaim) {
        // What a vCPU refused a page does before it retries the access.
        const ReclaimResult r = vm.mmu.reclaim(8 * kEntryBudget);
        c.reclaims++;
        c.reclaim_units += r.units;
        c.reclaim_pages += r.pages_freed;
      }
      if (++run > c.longest_refusal_run) c.longest_refusal_run = run;
      if (run >= kStuck) {
        c.stuck = true;
        break;
      }
      continue;
    }
    run = 0;
    if (o == FaultOutcome::retry) {
      c.retry++;
      continue;
    }
    if (o == FaultOutcome::fixed) c.fixed++;
    next++;
  }
  vm.mmu.vcpu_release(v);
}

}  // namespace

TEST_CASE("teardown help: a faulting vCPU beside a zapper that never runs deferred work makes progress",
          "[teardown][limit][concurrency]") {
  HostPlatform p(2);
  Counters c;
  SECTION("safe points only") {}
  SECTION("safe points, and reclaim() after out_of_memory") { c.use_reclaim = true; }
  uint64_t helped = 0;
  {
    TestVm vm(p, limited(kLimit));
    REQUIRE(vm.add_slot(1, 0, kSlotPages, 4 * kGiB, 1) == MemslotError::ok);
    Atomic<uint32_t> done{0};
    std::thread vcpu1([&] {
      faulting_vcpu(vm, c);
      done.store(1, Order::release);
    });
    // vCPU 0 (this thread, CPU 0): fast zap, let the other vCPU enter a couple of times, again.
    while (!done.load(Order::acquire)) {
      vm.mmu.invalidate_all_roots();
      c.zaps.fetch_add(1, Order::release);
      const uint64_t seen = c.attempts.load(Order::acquire);
      while (!done.load(Order::acquire) && c.attempts.load(Order::acquire) < seen + 2) std::this_thread::yield();
    }
    c.zapper_done.store(1, Order::release);
    vcpu1.join();
    const uint64_t zaps = c.zaps.load(Order::relaxed);
    const MmuStats s = vm.mmu.stats();
    helped = s.teardown_steps_helped;
    std::printf("%s: zaps %llu, vcpu1: attempts %llu fixed %llu retry %llu out_of_memory %llu (longest run %llu), "
                "table pages max %llu (limit %llu), refused %llu, teardowns queued %llu, steps %llu, "
                "steps helped %llu, reclaims %llu (units %llu, pages freed %llu)\n",
                c.use_reclaim ? "with reclaim" : "safe points only", (unsigned long long)zaps,
                (unsigned long long)c.attempts.load(Order::relaxed), (unsigned long long)c.fixed,
                (unsigned long long)c.retry, (unsigned long long)c.oom,
                (unsigned long long)c.longest_refusal_run, (unsigned long long)c.max_live,
                (unsigned long long)kLimit, (unsigned long long)s.table_pages_refused,
                (unsigned long long)s.teardowns_queued, (unsigned long long)s.teardown_steps,
                (unsigned long long)s.teardown_steps_helped, (unsigned long long)c.reclaims,
                (unsigned long long)c.reclaim_units, (unsigned long long)c.reclaim_pages);
    vm.mmu.wait_for_teardown(vm.mmu.invalidate_all_roots());
  }
  REQUIRE(c.over_limit == 0);
  REQUIRE(c.max_live <= kLimit);
  // CPU 1 ran steps from CPU 0's queue (CPU 0 runs some itself, through its backpressure).
  REQUIRE(helped > 0);
  // Progress in both sections. Without the zapper's backpressure the safe-point budget alone
  // (64 units per entry) falls behind a zapper that leaves a fresh root to tear down every 16
  // entries (an empty root's passes visit about 1.5k entries), and the vCPU is refused pages
  // for as long as the zapper keeps that pace; reclaim() alone got it through.
  REQUIRE_FALSE(c.stuck);
  REQUIRE(c.fixed == kTarget);
  if (c.use_reclaim && c.oom > 0) {
    REQUIRE(c.reclaims > 0);
  }
  REQUIRE(p.live_pages() == 0);
}
