// Concurrency stress of the whole MMU with real threads, each registered as a CPU. What races:
//   - two vCPU threads, each with a vCPU in address space 0 and one in address space 1, load
//     roots and fault random gfns with reads, writes and executes: 4 KiB, 2 MiB and 1 GiB
//     leaves, permission upgrades, fault-path splits and table replacements; after each fault
//     the "CPU" uses the page (sets Accessed, and Dirty on a write, with a CAS on the leaf) and
//     the leaf is checked; deferred work (teardown steps, epoch polls) runs at "safe points";
//   - a driver vCPU takes a 1 GiB slot's hot part through a cycle that makes every kind of
//     split and replacement happen (see below): eager splits (split_huge_pages, which yields),
//     write- and exec-protection of huge leaves (as dirty logging or a no-exec-huge-pages policy
//     would) that the fault path then splits, and huge leaves replacing tables, at 2 MiB and 1 GiB;
//   - an invalidator zaps random ranges (a third of them with faults held off, as a memslot
//     update does, then verifying that no leaf of the range is left in any root) and changes
//     memslots: deletes, re-creates, moves and flag flips, among them the 1 GiB slot, which
//     moves between two 1 GiB-aligned places;
//   - a fast-zap thread ages ranges locklessly and invalidates all roots, leaving most teardowns
//     to its deferred work and waiting for some (wait_for_teardown helps every CPU's queue).
// The run lasts until every path has been taken kTarget times (HV_STRESS_SCALE multiplies it)
// or until a deadline (HV_STRESS_MAX_MS, default 40 s); each count must then have reached half
// its target, so the test fails if a path stops being exercised. The seed is printed and
// HV_SEED replays it.
//
// Invariants: every leaf a vCPU sees maps its slot's backing (a slot and its moved copy share
// the backing); at quiescent points (every worker parked between two operations, every
// kCheckInterval) the counters equal a walk of the trees (leaves per level, tables),
// Mmu::count_leaves() agrees, no FROZEN entry or dead link is reachable, every tree holds only
// leaves of the current slots, and no freed page was written (HostPlatform poisons freed pages
// and keeps them until checked); at the end every page-table page was freed exactly once and
// nothing is left. No vCPU drops the last reference to a valid root during the run (no
// address-space switch): such a root is out of reach of walks until its teardown, while the
// counters still hold what it maps.
//
// Pacing: with other builds on the machine this process often gets about one of the 2 cores,
// and a thread that spins on the MMU lock takes it from the holder. So vCPUs pause between
// faults ("guest time"), writers between operations, and every thread gives the CPU away
// rather than spin while a writer holds or waits for the lock (backoff()).
#include <catch2/catch.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "mmu/tdp_iter.h"
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

// --- Address space 0 ---
// The giant slot (id 1): 1 GiB at 1 GiB or, moved, at 2 GiB; backing 1 GiB-aligned, so it may
// use 1 GiB leaves. Faults favour its first 8 MiB (the "hot" part), where splits, strips and
// replacements pile up.
constexpr gfn_t kGiantHome = kPagesPer1G, kGiantAlt = 2 * kPagesPer1G;
constexpr hpa_t kGiantBacking = 4 * kGiB;
constexpr uint64_t kHotPages = 4 * kPagesPer2M;
constexpr gfn_t kColdFrame = 256 * kPagesPer2M;  // offset of a second, colder window
// Small slots k = 0..3 (ids 2..5): 8 MiB at k * 16 MiB ("home") or k * 16 MiB + 8 MiB after a
// move; largest leaf 4 KiB or 2 MiB.
constexpr unsigned kSmall = 4;
constexpr uint64_t kSmallPages = 4 * kPagesPer2M;
constexpr gfn_t kSmallStride = 8 * kPagesPer2M;
hpa_t small_backing(unsigned k) { return (hpa_t{k} + 8) << 32; }
// --- Address space 1: one slot (id 10) of 32 MiB at gfn 0, largest leaf 2 MiB. ---
constexpr uint64_t kAs1Pages = 16 * kPagesPer2M;
constexpr hpa_t kAs1Backing = hpa_t{32} << 32;

// Is `leaf` (at `level`, found for gfn `g`) what some placement of its slot maps there?
bool leaf_ok(unsigned as, gfn_t g, int level, spte_t leaf) {
  const gfn_t first = spte::align_down(g, level);
  hpa_t want;
  if (as == 1) {
    if (first + spte::pages_per_entry(level) > kAs1Pages) return false;
    want = kAs1Backing + (first << 12);
  } else if (g >= kGiantHome && g < kGiantAlt + kPagesPer1G) {
    const gfn_t base = g >= kGiantAlt ? kGiantAlt : kGiantHome;
    want = kGiantBacking + ((first - base) << 12);
  } else {
    const unsigned k = unsigned(g / kSmallStride);
    if (k >= kSmall) return false;
    const gfn_t off = first % kSmallStride;
    const gfn_t slot_off = off >= kSmallPages ? off - kSmallPages : off;  // home or moved copy
    want = small_backing(k) + (slot_off << 12);
  }
  return spte::pfn_addr(leaf) == want;
}

// What the CPU does on an access through a leaf: set Accessed (and Dirty on a write) with a
// locked update, only on a present leaf. Lockless, inside an epoch section. Returns whether it
// found a leaf to mark.
bool cpu_touch(Platform& p, Epoch& e, Root* root, gfn_t g, bool write) {
  EpochReadGuard section(e);
  for (TdpIter it(p, root->table, root->level, g, g + 1, 1); it.valid(); it.next()) {
    if (!spte::is_leaf(it.old_spte, it.level())) continue;
    const spte_t bits = spte::kAccessed | (write ? spte::kDirty : 0);
    spte_t old = it.old_spte;
    while (spte::is_leaf(old, it.level()) && (old & bits) != bits) {
      if (__atomic_compare_exchange_n(it.sptep(), &old, old | bits, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        return true;
    }
    return false;
  }
  return false;
}

// Take `bits` (W or X) away from the huge leaves of [start, end) in `root`, with a CAS under the
// MMU lock held shared (as a write-protection pass for dirty logging would; it needs no flush
// here because no real TLB exists). The vCPUs' next write or execute there splits the leaf when
// the per-VM maximum is below its level. Returns the leaves changed.
uint64_t strip_huge(Mmu& m, Root* root, gfn_t start, gfn_t end, spte_t bits) {
  uint64_t n = 0;
  m.epoch().assert_not_in_read_section();
  PerCpuReadGuard guard(m.lock(), m.platform().cpu_id());
  if (root->invalid.load(Order::acquire)) return 0;
  EpochReadGuard section(m.epoch());
  for (TdpIter it(m.platform(), root->table, root->level, start, end, 2); it.valid(); it.next()) {
    spte_t old = it.old_spte;
    while (it.level() >= 2 && spte::is_leaf(old, it.level()) && (old & bits) != 0) {
      if (__atomic_compare_exchange_n(it.sptep(), &old, old & ~bits, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
        n++;
        break;
      }
    }
  }
  return n;
}

// Parks every worker between two operations so that the main thread can look at a quiescent
// MMU. Workers call checkpoint() at the top of their loop; the main thread calls run_paused().
class Quiesce {
 public:
  explicit Quiesce(unsigned workers) : workers_(workers) {}
  void checkpoint() {
    if (!requested_.load(std::memory_order_acquire)) return;
    std::unique_lock<std::mutex> l(m_);
    if (!paused_) return;
    const uint64_t round = round_;
    parked_++;
    cv_.notify_all();
    cv_.wait(l, [&] { return round_ != round; });
  }
  template <typename F>
  void run_paused(F&& f) {
    std::unique_lock<std::mutex> l(m_);
    paused_ = true;
    requested_.store(true, std::memory_order_release);
    cv_.wait(l, [&] { return parked_ == workers_; });
    f();
    paused_ = false;
    requested_.store(false, std::memory_order_release);
    parked_ = 0;
    round_++;
    cv_.notify_all();
  }

 private:
  const unsigned workers_;
  std::mutex m_;
  std::condition_variable cv_;
  std::atomic<bool> requested_{false};
  bool paused_ = false;
  unsigned parked_ = 0;
  uint64_t round_ = 0;
};

double env_double(const char* name, double fallback) {
  const char* s = std::getenv(name);
  return s && *s ? std::atof(s) : fallback;
}

// --- Run length and pacing ---
constexpr uint64_t kTarget = 2000;  // per path, times HV_STRESS_SCALE
constexpr double kDefaultMaxMs = 40000;
constexpr auto kCheckInterval = std::chrono::milliseconds(400);
// "Guest time" of a vCPU between two exits; the driver pauses a third of it between steps.
constexpr unsigned kGuestTimeUs = 300;
// Pause of the threads that take the MMU lock exclusively (zaps, memslot changes, fast zaps and
// their teardown) between two operations: the faults need the lock too.
constexpr unsigned kWriterPauseUs = 300;
// Units of deferred teardown per pass of the fast-zap thread: eight tables per step, so that a
// fast zap's teardown takes few exclusive acquisitions of the lock.
constexpr unsigned kTeardownBudget = 8 * spte::kEntriesPerTable;

// Pacing courtesy of the test (not of the MMU): a thread about to take the MMU lock shared
// while a writer holds or waits for it would only spin, and burn the time slice that the
// writer (or the readers it admits) needs; it gives the CPU away instead. Racy by design: it
// thins out the spinning, the lock still sees plenty of contention.
void backoff(Mmu& m) {
  for (int i = 0; i < 100 && (m.lock().is_write_locked() || m.lock().waiting_readers() != 0); i++)
    std::this_thread::yield();
}
// The same before an exclusive acquisition: a writer waits for the readers too.
void backoff_writer(Mmu& m) {
  for (int i = 0; i < 10 && m.lock().is_locked(); i++) std::this_thread::yield();
}

using Counter = std::atomic<uint64_t>;
unsigned long long ull(uint64_t v) { return static_cast<unsigned long long>(v); }

}  // namespace

TEST_CASE("stress: faults at every size, splits, huge replacements, zaps, memslot changes, fast zaps and aging",
          "[stress][concurrency]") {
  const uint64_t seed = hvtest::stress_seed("mmu_stress");
  const double scale = env_double("HV_STRESS_SCALE", 1.0);
  const auto deadline = std::chrono::milliseconds(uint64_t(env_double("HV_STRESS_MAX_MS", kDefaultMaxMs)));
  const uint64_t target = uint64_t(double(kTarget) * scale);  // per path
  const uint64_t required = target / 2;
  std::printf("[mmu_stress] target %llu per path, at least %llu required (HV_STRESS_SCALE=%g); deadline %llu ms "
              "(HV_STRESS_MAX_MS)\n",
              ull(target), ull(required), scale, ull(uint64_t(deadline.count())));
  std::fflush(stdout);

  constexpr unsigned kVcpuThreads = 2;
  constexpr unsigned kWorkers = kVcpuThreads + 3;  // + driver, invalidator, fast zap/ager
  HostPlatform p(kWorkers + 1);
  p.set_yield_probability(0.02);
  Counter n_faults{0}, n_zaps{0}, n_updates{0}, n_fastzaps{0}, n_fastzaps_waited{0}, n_ages{0}, n_young{0},
      n_touches{0}, n_stripped{0}, n_split_calls{0}, n_bad{0}, bad_leaf{0}, bad_zap{0}, bad_update{0};
  Counter outcomes[int(FaultOutcome::kCount)] = {};
  Counter installs[4] = {};  // `fixed` faults by the level of the leaf that maps the gfn afterwards
  std::vector<std::string> quiescent_errors;
  unsigned quiescent_checks = 0;
  std::chrono::milliseconds ran{0};
  {
    MmuConfig cfg;
    cfg.max_level = 3;
    TestVm vm(p, cfg);
    Mmu& mmu = vm.mmu;
    REQUIRE(vm.add_slot(1, kGiantHome, kPagesPer1G, kGiantBacking, 3) == MemslotError::ok);
    for (unsigned k = 0; k < kSmall; k++)
      REQUIRE(vm.add_slot(2 + k, k * kSmallStride, kSmallPages, small_backing(k), uint8_t(1 + k % 2)) == MemslotError::ok);
    REQUIRE(vm.add_slot(10, 0, kAs1Pages, kAs1Backing, 2, 0, 1) == MemslotError::ok);
    // Where the slots are now, for the vCPUs' choice of gfns (a stale value only makes a fault
    // unbacked); the memslot thread updates it.
    std::atomic<gfn_t> giant_base{kGiantHome};
    std::atomic<gfn_t> small_base[kSmall];
    for (unsigned k = 0; k < kSmall; k++) small_base[k] = k * kSmallStride;

    std::atomic<bool> stop{false};
    Quiesce quiesce(kWorkers);
    std::vector<std::thread> threads;

    // A fault as the vCPU threads take it: the outcome is counted; a leaf that maps the gfn
    // afterwards must map its slot's backing (it may already be zapped again), and the CPU
    // "uses" it (Accessed, Dirty on a write).
    auto vcpu_fault = [&](VcpuMmu& v, unsigned as, gfn_t g, unsigned access) -> FaultOutcome {
      const FaultOutcome o = mmu.map(v, g, access);
      outcomes[int(o)]++;
      n_faults++;
      if (o != FaultOutcome::fixed && o != FaultOutcome::spurious) return o;
      spte_t leaf;
      int level;
      if (mmu.lookup(v.root(), g, &leaf, &level)) {
        if (!leaf_ok(as, g, level, leaf)) n_bad++, bad_leaf++;
        if (o == FaultOutcome::fixed) installs[level]++;
      }
      if (cpu_touch(p, vm.epoch, v.root(), g, access == spte::kAccWrite)) n_touches++;
      return o;
    };

    // vCPU threads. Each runs two vCPUs, one per address space, and faults for one or the other
    // (so that no vCPU ever drops its root, and the 2 cores see few threads).
    for (unsigned c = 0; c < kVcpuThreads; c++) {
      threads.emplace_back([&, c] {
        HostCpu cpu(c + 1);
        hvtest::SplitMix rng(seed * 31 + c);
        VcpuMmu vcpus[2];
        mmu.vcpu_init(vcpus[0], 0);
        mmu.vcpu_init(vcpus[1], 1);
        while (!stop.load(std::memory_order_relaxed)) {
          quiesce.checkpoint();
          // "Guest time" between two exits: leaves the other threads (writers above all) the
          // CPU time they need on 2 cores.
          std::this_thread::sleep_for(std::chrono::microseconds(kGuestTimeUs));
          mmu.run_deferred_work(256);  // safe point before "entry"
          const unsigned as = rng.below(5) == 0 ? 1 : 0;
          VcpuMmu& v = vcpus[as];
          if (mmu.vcpu_load_root(v) == 0) continue;
          gfn_t g;
          const uint64_t r = rng.below(100);
          if (as == 1) {
            g = rng.below(kAs1Pages + 64);
          } else if (r < 55) {
            // The hot part, or a few frames in the middle of the GiB. Not the whole GiB: with
            // 4 KiB leaves that would grow to 512 tables, and replacing them by a 1 GiB leaf
            // (which walks every entry under the lock) would dominate the run.
            g = giant_base.load(std::memory_order_relaxed) +
                (rng.below(10) < 9 ? rng.below(kHotPages) : kColdFrame + rng.below(4 * kPagesPer2M));
          } else if (r < 92) {
            const unsigned k = unsigned(rng.below(kSmall));
            g = small_base[k].load(std::memory_order_relaxed) + rng.below(kSmallPages);
          } else if (r < 99) {
            g = rng.below(4 * kPagesPer1G);
          } else {
            g = (gfn_t{1} << 34) + rng.below(1000);  // beyond the guest's physical address width
          }
          const uint64_t a = rng.below(20);
          const unsigned access = a < 11 ? spte::kAccRead : a < 16 ? spte::kAccWrite : spte::kAccExec;
          backoff(mmu);
          vcpu_fault(v, as, g, access);
        }
        mmu.vcpu_release(vcpus[0]);
        mmu.vcpu_release(vcpus[1]);
      });
    }
    // Driver: a vCPU of address space 0 that takes the giant slot's hot part through a cycle of
    // mappings, so that every kind of split and replacement happens many times per second while
    // the vCPU threads fault the same gfns at random and the other threads zap, move, age and
    // fast-zap under it. Steps 0-3: largest mapping 3 and a fault (a 1 GiB leaf is installed, or
    // replaces the table a split left), then an eager split to 2 MiB. Steps 4 and 6: the 2 MiB
    // leaves are write- or exec-protected, then written or executed at largest mapping 1 (the
    // fault path splits them). Steps 5, 7 and 9: reads at largest mapping 2 (2 MiB leaves
    // replace the 4 KiB tables). Step 8: an eager split to 4 KiB (and one of a small slot).
    threads.emplace_back([&] {
      HostCpu cpu(kVcpuThreads + 1);
      hvtest::SplitMix rng(seed * 31 + 50);
      VcpuMmu v;
      mmu.vcpu_init(v, 0);
      unsigned step = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        quiesce.checkpoint();
        mmu.run_deferred_work(256);
        if (mmu.vcpu_load_root(v) == 0) continue;
        const gfn_t base = giant_base.load(std::memory_order_relaxed);
        bool unbacked = false;  // the giant slot is away (or moving): wait for it
        // Fault as a vCPU does: after a `retry` (a fast zap, a memslot change in flight, a lost
        // race) it reloads its root and faults again.
        auto fault = [&](gfn_t g, unsigned access) {
          for (int i = 0; i < 20; i++) {
            if (i) std::this_thread::yield();
            if (mmu.vcpu_load_root(v) == 0) continue;
            backoff(mmu);
            const FaultOutcome o = vcpu_fault(v, 0, g, access);
            if (o == FaultOutcome::unbacked) unbacked = true;
            if (o != FaultOutcome::retry) return;
          }
        };
        auto each_frame = [&](unsigned access) {
          for (gfn_t f = 0; f < kHotPages && !unbacked; f += kPagesPer2M) fault(base + f + rng.below(kPagesPer2M), access);
        };
        auto split = [&](gfn_t start, gfn_t end, int level) {
          backoff(mmu);
          mmu.split_huge_pages(v, start, end, level);
          n_split_calls++;
        };
        // Each step works from whatever the hot part holds now: a fast zap, a move of the slot
        // or a zap may have changed it since the last step.
        if (step < 4) {
          // A 1 GiB leaf (installed, or replacing the table a split left), split again to 2 MiB.
          mmu.set_max_level(3);
          fault(base + rng.below(kHotPages), spte::kAccRead);
          split(base, base + kHotPages, 2);
        } else if (step == 4 || step == 6) {
          // The 2 MiB leaves (left by the step before) lose W or X; writes or executes at
          // largest mapping 1 split them in the fault path.
          mmu.set_max_level(1);
          const spte_t bit = rng.below(3) == 0 ? spte::kWrite : spte::kExec;
          backoff(mmu);
          n_stripped += strip_huge(mmu, v.root(), base, base + kHotPages, bit);
          each_frame(bit == spte::kWrite ? spte::kAccWrite : spte::kAccExec);
        } else if (step % 2 == 1) {
          // 2 MiB leaves replace the 4 KiB tables.
          mmu.set_max_level(2);
          each_frame(spte::kAccRead);
        } else {
          // An eager split takes them down to 4 KiB again (and a small slot's).
          mmu.set_max_level(1);
          split(base, base + kHotPages, 1);
          const gfn_t s0 = small_base[rng.below(kSmall)].load(std::memory_order_relaxed);
          split(s0, s0 + kSmallPages, 1);
        }
        step = step == 9 ? 0 : step + 1;
        std::this_thread::sleep_for(std::chrono::microseconds(unbacked ? kWriterPauseUs : kGuestTimeUs / 3));
      }
      mmu.vcpu_release(v);
    });
    // Invalidator: leaf zaps of random ranges and memslot changes, one after the other (each
    // takes the MMU lock exclusively a few times; one thread for both keeps the writers' share
    // of the lock, and the convoys behind a preempted writer on 2 cores, small).
    threads.emplace_back([&] {
      HostCpu cpu(kVcpuThreads + 2);
      hvtest::SplitMix rng(seed * 31 + 100);
      bool moved[kSmall] = {}, present[kSmall] = {true, true, true, true};
      bool giant_moved = false, giant_present = true;
      // Zap with faults held off in the range (as a memslot update does), then verify that
      // nothing is left there.
      auto zap = [&] {
        unsigned as = 0;
        gfn_t a;
        const uint64_t r = rng.below(10);
        if (r < 3) {
          a = giant_base.load(std::memory_order_relaxed) + rng.below(kHotPages);
        } else if (r < 8) {
          a = rng.below(kSmall * kSmallStride);
        } else if (r < 9) {
          a = rng.below(kPagesPer1G) + giant_base.load(std::memory_order_relaxed);
        } else {
          as = 1;
          a = rng.below(kAs1Pages);
        }
        const gfn_t n = 1 + rng.below(3 * kPagesPer2M);
        if (rng.below(3) != 0) {
          mmu.zap_range(as, a, a + n);  // faults race with it and may map the range again
        } else {
          mmu.invalidate_begin(as, a, a + n);
          mmu.zap_range(as, a, a + n);
          // After the zap and its flush no leaf remains in the range, in any root.
          for (Root* rt = mmu.roots().next(nullptr, as); rt; rt = mmu.roots().next(rt, as)) {
            EpochReadGuard section(vm.epoch);
            for (TdpIter it(p, rt->table, rt->level, a, a + n, 1); it.valid(); it.next())
              if (spte::is_leaf(it.old_spte, it.level())) n_bad++, bad_zap++;
          }
          mmu.invalidate_end();
        }
        n_zaps++;
      };
      auto memslot_change = [&] {
        MemslotError e = MemslotError::ok;
        const uint64_t which = rng.below(10);
        const uint64_t op = rng.below(10);
        if (which < 2) {  // the giant slot: mostly moves and flag changes, seldom away
          if (!giant_present || op == 0) {
            if (giant_present) {
              e = mmu.update_memslot(MemslotOp::remove(0, 1));
            } else {
              e = vm.add_slot(1, giant_moved ? kGiantAlt : kGiantHome, kPagesPer1G, kGiantBacking, 3);
            }
            giant_present = !giant_present;
          } else if (op < 5) {
            giant_moved = !giant_moved;
            e = mmu.update_memslot(MemslotOp::move(0, 1, giant_moved ? kGiantAlt : kGiantHome));
            giant_base = giant_moved ? kGiantAlt : kGiantHome;
          } else {
            e = mmu.update_memslot(MemslotOp::set_flags(0, 1, op == 9 ? Memslot::kReadOnly : 0));
          }
        } else if (which < 9) {  // a small slot
          const unsigned k = unsigned(rng.below(kSmall));
          const uint32_t id = 2 + k;
          const gfn_t home = k * kSmallStride;
          if (!present[k] || op < 3) {
            if (present[k]) {
              e = mmu.update_memslot(MemslotOp::remove(0, id));
            } else {
              e = vm.add_slot(id, home + (moved[k] ? kSmallPages : 0), kSmallPages, small_backing(k),
                              uint8_t(1 + rng.below(2)));
            }
            present[k] = !present[k];
          } else if (op < 7) {
            moved[k] = !moved[k];
            e = mmu.update_memslot(MemslotOp::move(0, id, home + (moved[k] ? kSmallPages : 0)));
            small_base[k] = home + (moved[k] ? kSmallPages : 0);
          } else {
            e = mmu.update_memslot(MemslotOp::set_flags(0, id, op == 9 ? Memslot::kReadOnly : 0));
          }
        } else {  // address space 1
          e = mmu.update_memslot(MemslotOp::set_flags(1, 10, op < 3 ? Memslot::kReadOnly : 0));
        }
        if (e != MemslotError::ok) n_bad++, bad_update++;
        n_updates++;
      };
      while (!stop.load(std::memory_order_relaxed)) {
        quiesce.checkpoint();
        backoff_writer(mmu);
        if (rng.below(2) == 0) {
          zap();
        } else {
          memslot_change();
        }
        backoff_writer(mmu);
        mmu.run_deferred_work(256);
        std::this_thread::sleep_for(std::chrono::microseconds(kWriterPauseUs));
      }
    });
    // Lockless aging, and fast zaps: mostly left to the deferred work (this thread's next
    // passes, in steps of kTeardownBudget units), sometimes waited for (wait_for_teardown runs
    // the teardown itself, helping every CPU's queue).
    threads.emplace_back([&] {
      HostCpu cpu(kVcpuThreads + 3);
      hvtest::SplitMix rng(seed * 31 + 300);
      while (!stop.load(std::memory_order_relaxed)) {
        quiesce.checkpoint();
        const unsigned as = rng.below(5) == 0 ? 1 : 0;
        const gfn_t a = as == 1 ? 0 : giant_base.load(std::memory_order_relaxed) + rng.below(kHotPages);
        n_young += mmu.age_range(as, a, a + rng.below(kHotPages));
        n_ages++;
        backoff_writer(mmu);
        if (rng.below(2) == 0) {
          const uint64_t ticket = mmu.invalidate_all_roots();
          if (rng.below(8) == 0) {
            mmu.wait_for_teardown(ticket);
            n_fastzaps_waited++;
          }
          n_fastzaps++;
        }
        backoff_writer(mmu);
        mmu.run_deferred_work(kTeardownBudget);
        std::this_thread::sleep_for(std::chrono::microseconds(kWriterPauseUs));
      }
    });

    // Quiescent checks: the counters against walks, the trees against the current slots.
    auto check_quiescent = [&] {
      const MmuStats st = mmu.stats();
      const hvtest::TreeCensus c = hvtest::census(p, mmu);
      std::string e = c.compare(st);
      uint64_t walked[4];
      hvtest::count_all_leaves(mmu, 2, walked);
      for (int l = 1; l <= 3; l++) {
        if (walked[l] != c.leaves[l]) e += "count_leaves()[" + std::to_string(l) + "] != census; ";
      }
      for (unsigned as = 0; as < 2; as++) {
        const std::string t = vm.check_all_roots(vm.slot_refs(as), as);
        if (!t.empty()) e += "as " + std::to_string(as) + ": " + t + "; ";
      }
      // Freed pages so far still hold their poison (no write after free); this also hands them
      // back, so that the quarantine does not grow for the whole run.
      if (const size_t bad = p.check_quarantine()) e += std::to_string(bad) + " freed pages written; ";
      if (p.errors() != 0) e += "platform errors " + std::to_string(p.errors()) + "; ";
      quiescent_checks++;
      if (!e.empty() && quiescent_errors.size() < 5) quiescent_errors.push_back(e);
    };
    auto reached = [&] {
      const MmuStats st = mmu.stats();
      return installs[1] >= target && installs[2] >= target && installs[3] >= target &&
             st.eager_splits >= target && st.splits - st.eager_splits >= target &&
             st.huge_replacements >= target && n_ages >= target && n_young >= target &&
             n_fastzaps >= target && n_updates >= target && n_zaps >= target && quiescent_checks >= 10;
    };
    const auto t0 = std::chrono::steady_clock::now();
    for (;;) {
      std::this_thread::sleep_for(kCheckInterval);
      quiesce.run_paused(check_quiescent);
      ran = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
      if (reached() || ran >= deadline) break;
    }
    stop = true;
    for (auto& t : threads) t.join();
    // Every vCPU has dropped its root: the roots wait for their teardown, out of reach of the
    // walks (Roots::next). Run it all, then the counters must equal the (empty) walks again.
    mmu.wait_for_teardown(~uint64_t{0});
    check_quiescent();

    const MmuStats st = mmu.stats();
    std::printf("[mmu_stress] %.1f s, %u quiescent checks; faults %llu (fixed %llu spurious %llu retry %llu unbacked %llu "
                "wp %llu bad_gfn %llu oom %llu); installed 4K %llu 2M %llu 1G %llu\n",
                double(ran.count()) / 1000.0, quiescent_checks, ull(n_faults), ull(outcomes[0]), ull(outcomes[1]),
                ull(outcomes[2]), ull(outcomes[3]), ull(outcomes[4]), ull(outcomes[5]), ull(outcomes[6]),
                ull(installs[1]), ull(installs[2]), ull(installs[3]));
    std::printf("[mmu_stress] splits eager %llu (in %llu calls, %llu lock yields) fault-path %llu; huge replacements %llu; "
                "leaves protected %llu; CPU A/D touches %llu; agings %llu (young %llu)\n",
                ull(st.eager_splits), ull(n_split_calls), ull(st.split_yields), ull(st.splits - st.eager_splits),
                ull(st.huge_replacements), ull(n_stripped), ull(n_touches), ull(n_ages), ull(n_young));
    std::printf("[mmu_stress] fast zaps %llu (waited %llu), teardowns queued %llu, teardown steps %llu; memslot updates "
                "%llu; zaps %llu; flushes %llu\n",
                ull(n_fastzaps), ull(n_fastzaps_waited), ull(st.teardowns_queued), ull(st.teardown_steps),
                ull(n_updates), ull(n_zaps), ull(st.flushes));
    std::fflush(stdout);
    INFO("bad leaves " << bad_leaf.load() << ", leaves left after zap " << bad_zap.load() << ", failed updates "
                       << bad_update.load());
    REQUIRE(n_bad.load() == 0);
    for (const std::string& e : quiescent_errors) FAIL_CHECK("quiescent check: " << e);
    REQUIRE(quiescent_errors.empty());
    // Every path was taken often enough (the run stops early once all reach `target`).
    CHECK(installs[1] >= required);
    CHECK(installs[2] >= required);
    CHECK(installs[3] >= required);
    CHECK(st.eager_splits >= required);
    CHECK(st.splits - st.eager_splits >= required);
    CHECK(st.huge_replacements >= required);
    CHECK(n_ages >= required);
    CHECK(n_young >= required);
    CHECK(n_fastzaps >= required);
    CHECK(st.teardown_steps >= required);
    CHECK(n_updates >= required);
    CHECK(n_zaps >= required);
    CHECK(quiescent_checks >= 10);
    // Tear everything down (roots whose last vCPU left are queued already): the counters must
    // come back to zero exactly, which checks the accounting of every concurrent path.
    mmu.wait_for_teardown(mmu.invalidate_all_roots());
    vm.epoch.barrier();
    const MmuStats end = mmu.stats();
    for (int l = 1; l <= 3; l++) REQUIRE(end.leaves[l] == 0);
    REQUIRE(end.tables_live == 0);
    REQUIRE(end.roots_live == 0);
    REQUIRE(end.pages_awaiting_reclaim == 0);
  }
  REQUIRE(p.errors() == 0);
  REQUIRE(p.check_quarantine() == 0);
  REQUIRE(p.live_pages() == 0);
}
