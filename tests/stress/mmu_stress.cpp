// Concurrency stress of the whole MMU with real threads, each registered as a CPU:
//   - vCPU threads load roots and fault random gfns (reads and writes), run their deferred work
//     at "safe points", and check each leaf they get against the slot they looked up;
//   - a zapper thread zaps random ranges and then verifies, after its flush, that no leaf of the
//     range is left in any root (faults in the range are held off by a concurrent
//     invalidate_begin, as a memslot update would);
//   - a memslot thread deletes, re-creates, moves and flips slots; a fast-zap thread
//     invalidates all roots and waits for their teardown; an ager ages ranges.
// Invariants: nothing maps outside its slot's backing (every leaf a vCPU sees is checked against
// the slots that were ever valid for that gfn: a slot and its moved copy share the backing);
// every page-table page is freed exactly once and never while a reader could see it
// (HostPlatform poisons and quarantines freed pages: errors() == 0, check_quarantine() == 0);
// nothing is left allocated when the VM is gone.
#include <catch2/catch.hpp>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "mmu/tdp_iter.h"
#include "tests/host/mmu_fixture.h"
#include "tests/stress/stress_seed.h"

using namespace mmu;
using hvtest::HostCpu;
using hvtest::HostPlatform;
using hvtest::kPagesPer2M;
using hvtest::TestVm;

namespace {

// Slot k (k = 0..3) covers 8 MiB at gfn k * 16 MiB ("home") or k * 16 MiB + 8 MiB after a move;
// its backing is the same either way, so a leaf is correct iff it maps backing(k) + offset.
constexpr unsigned kSlots = 4;
constexpr uint64_t kSlotPages = 4 * kPagesPer2M;
constexpr gfn_t kStride = 8 * kPagesPer2M;
hpa_t backing(unsigned k) { return (hpa_t{k} + 1) << 32; }

// Where gfn `g` would be backed if slot k sits at `base`.
bool leaf_ok(gfn_t g, int level, spte_t leaf) {
  const unsigned k = unsigned(g / kStride);
  if (k >= kSlots) return false;
  const gfn_t off = g % kStride;
  const gfn_t slot_off = off >= kSlotPages ? off - kSlotPages : off;  // home or moved copy
  const gfn_t first = spte::align_down(slot_off, level);
  return spte::pfn_addr(leaf) == backing(k) + (first << 12);
}

}  // namespace

TEST_CASE("stress: concurrent faults, zaps, memslot changes, fast zaps and aging", "[stress][concurrency]") {
  const uint64_t seed = hvtest::stress_seed("mmu_stress");
  const auto duration = std::chrono::milliseconds(std::getenv("HV_STRESS_MS") ? std::atoi(std::getenv("HV_STRESS_MS")) : 3000);
  constexpr unsigned kVcpus = 3;
  HostPlatform p(8);
  p.set_yield_probability(0.02);
  std::atomic<uint64_t> n_faults{0}, n_zaps{0}, n_updates{0}, n_fastzaps{0}, n_ages{0}, n_bad{0},
      bad_leaf{0}, bad_zap{0}, bad_update{0};
  std::atomic<uint64_t> outcomes[int(FaultOutcome::kCount)] = {};
  {
    TestVm vm(p);
    for (unsigned k = 0; k < kSlots; k++)
      REQUIRE(vm.add_slot(k + 1, k * kStride, kSlotPages, backing(k), uint8_t(1 + k % 3)) == MemslotError::ok);
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;

    for (unsigned c = 0; c < kVcpus; c++) {
      threads.emplace_back([&, c] {
        HostCpu cpu(c + 1);
        hvtest::SplitMix rng(seed * 31 + c);
        VcpuMmu v;
        vm.mmu.vcpu_init(v, 0);
        while (!stop.load(std::memory_order_relaxed)) {
          // "Guest time": the host has 2 cores for 6 spinning threads; without this, a lock
          // holder preempted for a whole time slice stalls everyone.
          std::this_thread::yield();
          vm.mmu.run_deferred_work(256);  // safe point before "entry"
          if (vm.mmu.vcpu_load_root(v) == 0) continue;
          const gfn_t g = rng.below(kSlots * kStride + 64);
          const unsigned access = rng.below(4) == 0 ? spte::kAccWrite : spte::kAccRead;
          const FaultOutcome o = vm.mmu.map(v, g, access);
          outcomes[int(o)]++;
          n_faults++;
          if (o == FaultOutcome::fixed || o == FaultOutcome::spurious) {
            spte_t leaf;
            int level;
            // The leaf may already be zapped again; if it is there, it must be right.
            if (vm.mmu.lookup(v.root(), g, &leaf, &level) && !leaf_ok(g, level, leaf)) n_bad++, bad_leaf++;
          }
        }
        vm.mmu.vcpu_release(v);
      });
    }
    // Zapper: zap with faults held off in the range, then verify nothing is left there.
    threads.emplace_back([&] {
      HostCpu cpu(kVcpus + 1);
      hvtest::SplitMix rng(seed * 31 + 100);
      while (!stop.load(std::memory_order_relaxed)) {
        const gfn_t a = rng.below(kSlots * kStride), n = 1 + rng.below(3 * kPagesPer2M);
        vm.mmu.invalidate_begin(0, a, a + n);
        vm.mmu.zap_range(0, a, a + n);
        // After the zap and its flush no leaf remains in the range, in any root.
        for (Root* r = vm.mmu.roots().next(nullptr, 0); r; r = vm.mmu.roots().next(r, 0)) {
          EpochReadGuard section(vm.epoch);
          for (TdpIter it(p, r->table, r->level, a, a + n, 1); it.valid(); it.next())
            if (spte::is_leaf(it.old_spte, it.level())) n_bad++, bad_zap++;
        }
        vm.mmu.invalidate_end();
        n_zaps++;
        vm.mmu.run_deferred_work(256);
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
    });
    // Memslot changes.
    threads.emplace_back([&] {
      HostCpu cpu(kVcpus + 2);
      hvtest::SplitMix rng(seed * 31 + 200);
      bool moved[kSlots] = {}, present[kSlots] = {true, true, true, true};
      while (!stop.load(std::memory_order_relaxed)) {
        const unsigned k = unsigned(rng.below(kSlots));
        const uint32_t id = k + 1;
        MemslotError e = MemslotError::ok;
        switch (rng.below(3)) {
          case 0:
            if (present[k]) {
              e = vm.mmu.update_memslot(MemslotOp::remove(0, id));
              present[k] = false;
            } else {
              e = vm.add_slot(id, k * kStride + (moved[k] ? kSlotPages : 0), kSlotPages, backing(k),
                              uint8_t(1 + rng.below(3)));
              present[k] = true;
            }
            break;
          case 1:
            if (present[k]) {
              moved[k] = !moved[k];
              e = vm.mmu.update_memslot(MemslotOp::move(0, id, k * kStride + (moved[k] ? kSlotPages : 0)));
            }
            break;
          default:
            if (present[k]) e = vm.mmu.update_memslot(MemslotOp::set_flags(0, id, rng.below(2) ? Memslot::kReadOnly : 0));
        }
        if (e != MemslotError::ok) n_bad++, bad_update++;
        n_updates++;
        vm.mmu.run_deferred_work(256);
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    });
    // Fast zaps, waited for; and aging.
    threads.emplace_back([&] {
      HostCpu cpu(kVcpus + 3);
      hvtest::SplitMix rng(seed * 31 + 300);
      while (!stop.load(std::memory_order_relaxed)) {
        if (rng.below(4) == 0) {
          vm.mmu.wait_for_teardown(vm.mmu.invalidate_all_roots());
          n_fastzaps++;
        } else {
          const gfn_t a = rng.below(kSlots * kStride);
          vm.mmu.age_range(0, a, a + rng.below(kStride));
          n_ages++;
        }
        vm.mmu.run_deferred_work(256);
        std::this_thread::sleep_for(std::chrono::microseconds(500));
      }
    });

    std::this_thread::sleep_for(duration);
    stop = true;
    for (auto& t : threads) t.join();
    const MmuStats st = vm.mmu.stats();
    std::printf("[mmu_stress] faults %llu (fixed %llu spurious %llu retry %llu unbacked %llu wp %llu oom %llu), "
                "zaps %llu, memslot updates %llu, fast zaps %llu, agings %llu; splits %llu, huge replacements "
                "%llu, teardown steps %llu, flushes %llu\n",
                (unsigned long long)n_faults.load(), (unsigned long long)outcomes[0].load(),
                (unsigned long long)outcomes[1].load(), (unsigned long long)outcomes[2].load(),
                (unsigned long long)outcomes[3].load(), (unsigned long long)outcomes[4].load(),
                (unsigned long long)outcomes[6].load(), (unsigned long long)n_zaps.load(),
                (unsigned long long)n_updates.load(), (unsigned long long)n_fastzaps.load(),
                (unsigned long long)n_ages.load(), (unsigned long long)st.splits,
                (unsigned long long)st.huge_replacements, (unsigned long long)st.teardown_steps,
                (unsigned long long)st.flushes);
    INFO("bad leaves " << bad_leaf.load() << ", leaves left after zap " << bad_zap.load()
         << ", failed updates " << bad_update.load());
    REQUIRE(n_bad.load() == 0);
    REQUIRE(n_faults.load() > 1000);
    // Quiescent now: every tree still referenced matches the final slots.
    REQUIRE(vm.check_all_roots(vm.slot_refs()).empty());
    // Tear everything down (roots whose last vCPU left are queued already): the counters must
    // come back to zero exactly, which checks the accounting of every concurrent path.
    vm.mmu.wait_for_teardown(vm.mmu.invalidate_all_roots());
    vm.epoch.barrier();
    const MmuStats end = vm.mmu.stats();
    for (int l = 1; l <= 3; l++) REQUIRE(end.leaves[l] == 0);
    REQUIRE(end.tables_live == 0);
    REQUIRE(end.roots_live == 0);
    REQUIRE(end.pages_awaiting_reclaim == 0);
  }
  REQUIRE(p.errors() == 0);
  REQUIRE(p.check_quarantine() == 0);
  REQUIRE(p.live_pages() == 0);
}
