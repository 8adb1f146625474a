// Teardown of invalid roots under the *shared* MMU lock (issue 13, item 2), with real threads
// (run under ThreadSanitizer by the host-tsan preset). What races:
//   - two vCPU threads fault random gfns of their own half of slot 1 (4 KiB leaves only), reads
//     and writes, reloading their root before every fault (as hv does before every entry), and
//     check each result: fixed/spurious must leave the leaf that maps the slot's backing with
//     the access granted, unless a fast zap has made the root invalid meanwhile (its teardown
//     may have removed the leaf already);
//   - a builder thread, in cycles: builds a big tree in the valid root (a 1 GiB leaf of slot 2
//     split to 2 MiB, and its first kSplitMiB split to 4 KiB: many tables to tear down), zaps a
//     part of slot 2 now and then (a memslot-style leaf zap: MMU lock exclusive, and it visits
//     the invalid roots whose teardown is under way), fast-zaps (invalidate_all_roots), then
//     runs the deferred teardown of the invalid roots it queued (run_deferred_work, small
//     budget) until none is left;
//   - a helper thread (another CPU) calls reclaim() in a loop, which runs teardown steps from
//     any CPU's queue: two teardowns (of different roots) then run under the shared lock at once.
// What it shows:
//   - every SPTE write of a teardown step happens with the MMU lock *not* held exclusively (a
//     recorder hook checks the lock at each such write), and faults complete while a teardown
//     step holds the lock (probes: at some teardown writes the builder waits until a vCPU's
//     fault that took the lock has finished; with an exclusive step none can);
//   - at the end (quiescent): the counters equal a walk of the trees, every leaf maps its
//     slot's backing, no FROZEN entry or dead link is reachable; then, with everything torn
//     down, every counter is 0, no page was freed twice or written after its free (HostPlatform
//     poisons freed pages and checks them), and no page is left (every page accounted for).
#include <catch2/catch.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "mmu/spte_ops.h"
#include "tests/host/mmu_fixture.h"
#include "tests/host/tree_census.h"
#include "tests/stress/stress_seed.h"

using namespace mmu;
using hvtest::HostCpu;
using hvtest::HostPlatform;
using hvtest::kGiB;
using hvtest::kPagesPer1G;
using hvtest::kPagesPer2M;
using hvtest::TestVm;

namespace {

constexpr uint64_t kFaultPages = 8 * kPagesPer2M;  // slot 1: 16 MiB at gfn 0, 4 KiB leaves
constexpr hpa_t kFaultBacking = hpa_t{1} << 32;
constexpr gfn_t kPileBase = kPagesPer1G;  // slot 2: 1 GiB at 1 GiB, 1 GiB-aligned backing
constexpr hpa_t kPileBacking = 8 * kGiB;
constexpr uint64_t kSplitPages = 16 * kPagesPer2M;  // split to 4 KiB per cycle: 16 tables
constexpr unsigned kMaxProbes = 24;
constexpr auto kProbeWait = std::chrono::milliseconds(500);

// Shared with the recorder hook (set before the threads start, cleared after they joined).
struct Observed {
  TestVm* vm = nullptr;
  std::atomic<uint64_t> locked_faults{0};      // faults that took the lock and finished
  std::atomic<uint64_t> teardown_writes{0};    // SPTE writes of teardown steps
  std::atomic<uint64_t> exclusive_writes{0};   // ... of which with the lock held exclusively
  std::atomic<unsigned> probes{0}, probes_overlapped{0};
};
// This thread is inside run_deferred_work()/reclaim() (so a write of 0 over a present entry is
// a teardown step's: nothing else in those calls clears live entries), and may probe.
thread_local bool t_in_teardown = false;
thread_local bool t_may_probe = false;
thread_local bool t_probed_this_call = false;

void on_spte_write(void* ctx, spte_t*, spte_t old_value, spte_t new_value, int) {
  if (!t_in_teardown || new_value != 0 || !spte::is_present(old_value)) return;
  auto* o = static_cast<Observed*>(ctx);
  o->teardown_writes.fetch_add(1, std::memory_order_relaxed);
  // Held exclusively means by us: a writer sets kHeld only after every reader has drained.
  if (o->vm->mmu.lock().is_write_locked()) o->exclusive_writes.fetch_add(1, std::memory_order_relaxed);
  if (!t_may_probe || t_probed_this_call || o->probes.load(std::memory_order_relaxed) >= kMaxProbes) return;
  t_probed_this_call = true;
  o->probes.fetch_add(1, std::memory_order_relaxed);
  // We are inside a teardown step, holding the MMU lock: wait for a vCPU's fault that takes the
  // lock to finish (2 of them, so that one that held it already when the step began is not
  // enough). Bounded: with an exclusive step the faults wait for us, and the probe fails.
  const uint64_t f0 = o->locked_faults.load(std::memory_order_acquire);
  const auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - t0 < kProbeWait) {
    if (o->locked_faults.load(std::memory_order_acquire) >= f0 + 2) {
      o->probes_overlapped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    std::this_thread::yield();
  }
}

struct TeardownScope {
  explicit TeardownScope(bool may_probe) {
    t_in_teardown = true;
    t_may_probe = may_probe;
    t_probed_this_call = false;
  }
  ~TeardownScope() { t_in_teardown = t_may_probe = false; }
};

}  // namespace

TEST_CASE("teardown stress: vCPUs fault on the valid root while invalid roots are torn down under the shared lock",
          "[stress][teardown]") {
  const uint64_t seed = hvtest::stress_seed("teardown_shared_stress");
  unsigned cycles = 24;
  if (const char* s = std::getenv("HV_STRESS_SCALE")) cycles = unsigned(cycles * std::max(1.0, std::atof(s)));
  HostPlatform p(4);  // CPU 0: helper, 1-2: vCPUs, 3: builder
  {
    MmuConfig cfg;
    cfg.max_teardown_backlog = 0;  // the builder runs its teardown itself, as deferred work
    TestVm vm(p, cfg);
    Mmu& mmu = vm.mmu;
    REQUIRE(vm.add_slot(1, 0, kFaultPages, kFaultBacking, 1) == MemslotError::ok);
    REQUIRE(vm.add_slot(2, kPileBase, kPagesPer1G, kPileBacking, 3) == MemslotError::ok);

    Observed obs;
    obs.vm = &vm;
    g_spte_recorder = {on_spte_write, &obs};

    std::atomic<bool> stop{false};
    std::atomic<uint64_t> bad{0}, faults{0}, retries{0}, gone{0}, fast_zaps{0}, zaps{0}, reclaims{0};
    std::atomic<unsigned> builder_done{0};
    std::string first_bad;
    std::atomic<bool> first_bad_taken{false};
    auto fail = [&](const std::string& what) {
      if (!first_bad_taken.exchange(true)) first_bad = what;
      bad.fetch_add(1);
    };

    std::vector<std::thread> threads;
    for (unsigned t = 0; t < 2; t++) {
      threads.emplace_back([&, t] {
        HostCpu cpu(1 + t);
        hvtest::TestVcpu v(vm);
        hvtest::SplitMix rng(seed * 31 + t);
        const gfn_t base = t * (kFaultPages / 2);
        while (!stop.load(std::memory_order_relaxed)) {
          mmu.vcpu_load_root(v);  // "before VM entry"
          const gfn_t g = base + rng.below(kFaultPages / 2);
          const unsigned access = rng.below(4) == 0 ? spte::kAccRead | spte::kAccWrite : spte::kAccRead;
          const FaultOutcome o = mmu.map(v, g, access);
          if (o == FaultOutcome::retry) {
            retries.fetch_add(1, std::memory_order_relaxed);
            continue;
          }
          if (o != FaultOutcome::fixed && o != FaultOutcome::spurious) {
            fail(std::string("fault outcome ") + to_string(o));
            continue;
          }
          // Both outcomes held the lock shared (the root check is under it) and finished.
          obs.locked_faults.fetch_add(1, std::memory_order_release);
          faults.fetch_add(1, std::memory_order_relaxed);
          spte_t leaf = 0;
          int level = 0;
          if (!mmu.lookup(v.root(), g, &leaf, &level)) {
            // Only a teardown (of a root a fast zap invalidated) removes a leaf of slot 1.
            if (v.root()->invalid.load(Order::acquire)) {
              gone.fetch_add(1, std::memory_order_relaxed);
            } else {
              fail("leaf missing after the fault, root valid");
            }
            continue;
          }
          const bool write_ok = !(access & spte::kAccWrite) || (leaf & spte::kWrite);
          if (level != 1 || spte::pfn_addr(leaf) != kFaultBacking + (g << kPageShift) || !write_ok)
            fail("wrong leaf for gfn " + std::to_string(g));
        }
      });
    }
    // The helper: reclaim() runs teardown steps from any CPU's queue (the builder's included).
    threads.emplace_back([&] {
      HostCpu cpu(0);
      while (!stop.load(std::memory_order_relaxed)) {
        {
          TeardownScope scope(false);
          if (mmu.reclaim(64).units) reclaims.fetch_add(1, std::memory_order_relaxed);
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    });
    // The builder.
    threads.emplace_back([&] {
      HostCpu cpu(3);
      hvtest::TestVcpu v(vm);
      hvtest::SplitMix rng(seed);
      for (unsigned c = 0; c < cycles; c++) {
        // A big tree in the valid root (shared with the vCPUs).
        if (mmu.vcpu_load_root(v) == 0) {
          fail("no root");
          break;
        }
        if (vm.fault(v, kPileBase, spte::kAccRead | spte::kAccWrite) != FaultOutcome::fixed ||
            !mmu.split_huge_pages(v, kPileBase, kPileBase + kSplitPages, 1)) {
          fail("pile build failed");
          break;
        }
        const uint64_t ticket = mmu.invalidate_all_roots();
        fast_zaps.fetch_add(1, std::memory_order_relaxed);
        // Deferred work, as at hv's safe points, until every teardown up to ours is done; now
        // and then a leaf zap of part of slot 2 (exclusive) between two steps.
        while (!mmu.roots().teardowns_done_up_to(ticket)) {
          {
            TeardownScope scope(true);
            mmu.run_deferred_work(64);
          }
          if (rng.below(8) == 0) {
            const gfn_t s = kPileBase + rng.below(kSplitPages);
            mmu.zap_range(0, s, s + 1 + rng.below(4 * kPagesPer2M));
            zaps.fetch_add(1, std::memory_order_relaxed);
          }
          // The helper may hold our root's step: wait for it rather than spin.
          std::this_thread::yield();
        }
      }
      builder_done.store(1);
    });
    while (builder_done.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    stop = true;
    for (auto& t : threads) t.join();
    g_spte_recorder = {};

    // Quiescent: the vCPUs released their roots (their teardown is queued); finish it all.
    mmu.wait_for_teardown(mmu.roots().last_ticket());
    const MmuStats st = mmu.stats();
    std::printf("[teardown_shared_stress] %u cycles: fast zaps %llu, zaps %llu, teardowns queued %llu, steps %llu "
                "(helped %llu, reclaims %llu); faults %llu (retry %llu, leaf gone by teardown %llu); teardown "
                "writes %llu, under the exclusive lock %llu; probes %u, faults finished inside a step %u\n",
                cycles, (unsigned long long)fast_zaps.load(), (unsigned long long)zaps.load(),
                (unsigned long long)st.teardowns_queued, (unsigned long long)st.teardown_steps,
                (unsigned long long)st.teardown_steps_helped, (unsigned long long)reclaims.load(),
                (unsigned long long)faults.load(), (unsigned long long)retries.load(),
                (unsigned long long)gone.load(), (unsigned long long)obs.teardown_writes.load(),
                (unsigned long long)obs.exclusive_writes.load(), obs.probes.load(), obs.probes_overlapped.load());
    std::fflush(stdout);
    INFO("first bad result: " << first_bad);
    REQUIRE(bad.load() == 0);
    // The property itself: no teardown write under the exclusive lock, and faults that take
    // the lock finish while a teardown step holds it. (Probes can fail when a writer -- a
    // zap or the helper's fence -- waits meanwhile: phase-fair readers then queue behind it.)
    REQUIRE(obs.teardown_writes.load() > 0);
    CHECK(obs.exclusive_writes.load() == 0);
    REQUIRE(obs.probes.load() >= kMaxProbes / 2);
    CHECK(obs.probes_overlapped.load() * 2 >= obs.probes.load());
    CHECK(faults.load() >= 100);
    CHECK(fast_zaps.load() == cycles);

    // Every page accounted for: the counters equal the walk, every leaf is right, nothing
    // transient is reachable.
    const std::string census = hvtest::census(p, mmu).compare(st);
    CHECK(census.empty());
    INFO(census);
    CHECK(vm.check_all_roots(vm.slot_refs(0), 0).empty());
    // Tear everything down: every counter back to 0 exactly.
    mmu.wait_for_teardown(mmu.invalidate_all_roots());
    vm.epoch.barrier();
    const MmuStats end = mmu.stats();
    for (int l = 1; l <= 3; l++) REQUIRE(end.leaves[l] == 0);
    REQUIRE(end.tables_live == 0);
    REQUIRE(end.roots_live == 0);
    REQUIRE(end.pages_awaiting_reclaim == 0);
  }
  REQUIRE(p.errors() == 0);           // no page freed twice (or never allocated)
  REQUIRE(p.check_quarantine() == 0);  // no page written after its free
  REQUIRE(p.live_pages() == 0);        // no page left
}
