// MMU benchmarks (Google Benchmark; run in the host-release preset by `tools/hv bench`).
//
// Each benchmark times our operation and, in the same run, a baseline: the same number of
// SPTE-sized (8-byte) reads and writes done with plain memory operations on an array of the
// same size, in the same order. Counters: ns per operation for both, and ratio = ours/baseline.
// Nothing here asserts a time.
#include <benchmark/benchmark.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "mmu/lock.h"
#include "mmu/percpu_counters.h"
#include "mmu/percpu_rwlock.h"
#include "tests/host/mmu_fixture.h"

using namespace mmu;
using hvtest::HostCpu;
using hvtest::HostPlatform;
using hvtest::kGiB;
using hvtest::kPagesPer1G;
using hvtest::kPagesPer2M;
using hvtest::TestVcpu;
using hvtest::TestVm;

namespace {

using Clock = std::chrono::steady_clock;
double ns_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
}
// This thread's CPU time (CLOCK_THREAD_CPUTIME_ID): on a loaded machine the wall clock also
// counts the time other processes had the core; this does not (cache-line stalls it does).
double thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) * 1e9 + double(ts.tv_nsec);
}

// The baseline: `reads` loads and `writes` stores of 8-byte words per operation, at the word
// an SPTE of that operation would live in (index order given), over plain memory.
// `cpu_ns`, if given, receives the thread CPU time of the same loop.
double baseline_ns(const std::vector<uint64_t>& order, unsigned reads, unsigned writes,
                   double* cpu_ns = nullptr) {
  std::vector<uint64_t> mem(order.size() + 8, 0);
  uint64_t sink = 0;
  const double c0 = cpu_ns ? thread_cpu_ns() : 0;
  const auto t0 = Clock::now();
  for (uint64_t i : order) {
    for (unsigned r = 0; r < reads; r++) sink += reinterpret_cast<volatile uint64_t&>(mem[i + r]);
    for (unsigned w = 0; w < writes; w++) reinterpret_cast<volatile uint64_t&>(mem[i]) = sink + w;
  }
  const double ns = ns_since(t0);
  if (cpu_ns) *cpu_ns = thread_cpu_ns() - c0;
  benchmark::DoNotOptimize(sink);
  return ns;
}

// Totals over all iterations of the current benchmark; the counters are set from them, so they
// describe every iteration, not only the last one.
struct Totals {
  double ours = 0, base = 0, ops = 0;
};
thread_local Totals t_totals;
void report(benchmark::State& state, double ours_ns, double base_ns, uint64_t ops) {
  state.SetIterationTime(ours_ns / 1e9);
  t_totals.ours += ours_ns;
  t_totals.base += base_ns;
  t_totals.ops += double(ops);
  state.counters["ns_per_op"] = t_totals.ours / t_totals.ops;
  state.counters["baseline_ns_per_op"] = t_totals.base / t_totals.ops;
  state.counters["ratio"] = t_totals.ours / t_totals.base;
  state.counters["ops"] = double(ops);
}
// Call at the top of every benchmark function.
void reset_totals() { t_totals = Totals{}; }

// Table pages that mapping `pages` gfns can take at most (one per 512 entries at each level,
// and a few for the levels above), reserved before the timed loop (HostPlatform::reserve_pages):
// otherwise each table page would be fresh heap memory whose first touch is a host page fault,
// about 20 us in a virtual machine, 40 ns per 4 KiB fault when timed with it. The kernel's
// physical memory manager hands out memory that is already there. The reserve's pages are
// still zeroed by alloc_page() inside the timed loop, as the kernel zeroes its pages.
size_t tables_for(uint64_t pages) { return size_t(pages / 511 + 16); }

std::vector<uint64_t> sequence(uint64_t n, bool shuffle) {
  std::vector<uint64_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  if (shuffle) std::shuffle(v.begin(), v.end(), std::mt19937_64(42));
  return v;
}

// 4 KiB faults: each walks 4 levels (4 reads) and writes one leaf (plus tables, amortized).
// `fences`: the platform's (asymmetric where membarrier(2) works), or symmetric, to show in
// the same run what the asymmetric fences save (mmu/platform.h).
void fault_4k(benchmark::State& state, bool random,
              HostPlatform::Fences fences = HostPlatform::default_fences()) {
  reset_totals();
  const uint64_t n = uint64_t(state.range(0));
  const auto order = sequence(n, random);
  double cpu_ns = 0;  // this thread's CPU time in the timed loops
  for (auto _ : state) {
    HostPlatform p(4, fences);
    p.reserve_pages(tables_for(n));
    state.counters["asymmetric_fences"] = p.asymmetric_fences() ? 1 : 0;
    TestVm vm(p);
    vm.add_slot(1, 0, n, 1ull << 32, 1);
    TestVcpu v(vm);
    vm.mmu.vcpu_load_root(v);
    const double c0 = thread_cpu_ns();
    const auto t0 = Clock::now();
    for (uint64_t g : order) benchmark::DoNotOptimize(vm.mmu.map(v, g, spte::kAccRead));
    const double ours = ns_since(t0);
    cpu_ns += thread_cpu_ns() - c0;
    report(state, ours, baseline_ns(order, 4, 1), n);
  }
  state.counters["cpu_ns_per_op"] = cpu_ns / t_totals.ops;
}
void BM_Fault4K_Sequential(benchmark::State& s) { fault_4k(s, false); }
void BM_Fault4K_Random(benchmark::State& s) { fault_4k(s, true); }
void BM_Fault4K_SequentialSymmetric(benchmark::State& s) {
  fault_4k(s, false, HostPlatform::Fences::symmetric);
}
BENCHMARK(BM_Fault4K_Sequential)->Arg(32768)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Fault4K_Random)->Arg(32768)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Fault4K_SequentialSymmetric)->Arg(32768)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_Fault2M(benchmark::State& state) {
  reset_totals();
  const uint64_t n = uint64_t(state.range(0));  // 2 MiB leaves
  const auto order = sequence(n, false);
  for (auto _ : state) {
    HostPlatform p;
    p.reserve_pages(tables_for(n * kPagesPer2M / 512));
    TestVm vm(p);
    vm.add_slot(1, 0, n * kPagesPer2M, 1ull << 32, 2);
    TestVcpu v(vm);
    vm.mmu.vcpu_load_root(v);
    const auto t0 = Clock::now();
    for (uint64_t i : order) benchmark::DoNotOptimize(vm.mmu.map(v, i * kPagesPer2M, spte::kAccRead));
    report(state, ns_since(t0), baseline_ns(order, 3, 1), n);
  }
}
BENCHMARK(BM_Fault2M)->Arg(2048)->UseManualTime()->Unit(benchmark::kMillisecond);

// Pre-fault (Mmu::prefault): `pages` of guest memory mapped by calls of 512 units each, timed
// per 4 KiB page covered. In the same run, the same memory mapped fault by fault (map() per
// leaf, as EPT violations would) and the memory baseline of a 4 KiB fault (4 reads, 1 write per
// leaf). Counters: ns_per_op (pre-fault, per page), fault_ns_per_page, ratio_to_fault.
void prefault_bench(benchmark::State& state, int level) {
  reset_totals();
  const uint64_t leaves = uint64_t(state.range(0));
  const uint64_t span = spte::pages_per_entry(level);
  const uint64_t pages = leaves * span;
  double fault_ns = 0, cpu_ns = 0, fault_cpu_ns = 0;
  for (auto _ : state) {
    double ours = 0;
    {
      HostPlatform p;
      p.reserve_pages(tables_for(pages / spte::pages_per_entry(level)));
      TestVm vm(p);
      vm.add_slot(1, 0, pages, 1ull << 32, uint8_t(level));
      TestVcpu v(vm);
      vm.mmu.vcpu_load_root(v);
      const double c0 = thread_cpu_ns();
      const auto t0 = Clock::now();
      for (gfn_t g = 0; g < pages;) g = vm.mmu.prefault(v, g, pages, 512).next;
      ours = ns_since(t0);
      cpu_ns += thread_cpu_ns() - c0;
    }
    {
      HostPlatform p;
      p.reserve_pages(tables_for(pages / spte::pages_per_entry(level)));
      TestVm vm(p);
      vm.add_slot(1, 0, pages, 1ull << 32, uint8_t(level));
      TestVcpu v(vm);
      vm.mmu.vcpu_load_root(v);
      const double c0 = thread_cpu_ns();
      const auto t0 = Clock::now();
      for (gfn_t g = 0; g < pages; g += span) benchmark::DoNotOptimize(vm.mmu.map(v, g, spte::kAccRead));
      fault_ns += ns_since(t0);
      fault_cpu_ns += thread_cpu_ns() - c0;
    }
    report(state, ours, baseline_ns(sequence(leaves, false), 4, 1), pages);
  }
  state.counters["fault_ns_per_page"] = fault_ns / t_totals.ops;
  state.counters["ratio_to_fault"] = t_totals.ours / fault_ns;
  state.counters["cpu_ns_per_op"] = cpu_ns / t_totals.ops;
  state.counters["cpu_ratio_to_fault"] = cpu_ns / fault_cpu_ns;
}
void BM_Prefault4K(benchmark::State& s) { prefault_bench(s, 1); }
void BM_Prefault2M(benchmark::State& s) { prefault_bench(s, 2); }
BENCHMARK(BM_Prefault4K)->Arg(32768)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Prefault2M)->Arg(2048)->UseManualTime()->Unit(benchmark::kMillisecond);

// Fault-around: sequential first touch of `pages` 4 KiB pages in a 4 KiB-only slot, as a guest
// would do it: a page that is mapped already costs nothing but the walk that finds it (lookup(),
// standing in for the CPU's own walk), one that is not costs a fault (map()). The argument is
// MmuConfig::fault_around (0: off, the same-run baseline). Counters: ns_per_op per page touched,
// faults_per_page, fault_ns (per fault: what one EPT-violation exit spends in the MMU).
void BM_FaultAroundSeq(benchmark::State& state) {
  reset_totals();
  const uint64_t pages = 32768;
  uint64_t faults = 0;
  double fault_ns = 0, cpu_ns = 0;
  for (auto _ : state) {
    HostPlatform p;
    p.reserve_pages(tables_for(pages));
    MmuConfig cfg;
    cfg.fault_around = unsigned(state.range(0));
    TestVm vm(p, cfg);
    vm.add_slot(1, 0, pages, 1ull << 32, 1);
    TestVcpu v(vm);
    vm.mmu.vcpu_load_root(v);
    double in_faults = 0;
    const double c0 = thread_cpu_ns();
    const auto t0 = Clock::now();
    for (gfn_t g = 0; g < pages; g++) {
      spte_t leaf;
      int level;
      if (vm.mmu.lookup(v.root(), g, &leaf, &level)) continue;
      const auto f0 = Clock::now();
      benchmark::DoNotOptimize(vm.mmu.map(v, g, spte::kAccRead | spte::kAccWrite));
      in_faults += ns_since(f0);
      faults++;
    }
    const double ours = ns_since(t0);
    cpu_ns += thread_cpu_ns() - c0;
    fault_ns += in_faults;
    report(state, ours, baseline_ns(sequence(pages, false), 4, 1), pages);
  }
  state.counters["faults_per_page"] = double(faults) / t_totals.ops;
  state.counters["fault_ns"] = faults ? fault_ns / double(faults) : 0;
  state.counters["cpu_ns_per_op"] = cpu_ns / t_totals.ops;
}
BENCHMARK(BM_FaultAroundSeq)->Arg(0)->Arg(3)->Arg(7)->Arg(15)->Arg(31)->Arg(63)->Arg(511)
    ->UseManualTime()->Unit(benchmark::kMillisecond);

// Map `pages` 4 KiB pages with 4 KiB leaves (setup, untimed).
void map_4k(TestVm& vm, TestVcpu& v, uint64_t pages) {
  vm.add_slot(1, 0, pages, 1ull << 32, 1);
  vm.mmu.vcpu_load_root(v);
  for (gfn_t g = 0; g < pages; g++) vm.mmu.map(v, g, spte::kAccRead);
}

// Zap, teardown and split are each one long operation per iteration, so one preemption by
// another process on this (shared, 2-core) machine can double an iteration's wall time. Besides
// the totals (ns_per_op, ratio), these report per iteration and take the median:
//   ratio_median      our wall time / the same-run memory baseline's wall time
//   cpu_ratio_median  the same in thread CPU time (CLOCK_THREAD_CPUTIME_ID): robust against
//                     other load, not against cache effects of it
//   cpu_ns_per_op_median
struct PerIteration {
  std::vector<double> ratio, cpu_ratio, cpu_ns_per_op;
  void add(double ours, double base, double ours_cpu, double base_cpu, uint64_t ops) {
    ratio.push_back(ours / base);
    cpu_ratio.push_back(ours_cpu / base_cpu);
    cpu_ns_per_op.push_back(ours_cpu / double(ops));
  }
  static double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  }
  void set(benchmark::State& state) const {
    state.counters["ratio_median"] = median(ratio);
    state.counters["ratio_min"] = ratio.empty() ? 0 : *std::min_element(ratio.begin(), ratio.end());
    state.counters["ratio_max"] = ratio.empty() ? 0 : *std::max_element(ratio.begin(), ratio.end());
    state.counters["cpu_ratio_median"] = median(cpu_ratio);
    state.counters["cpu_ns_per_op_median"] = median(cpu_ns_per_op);
  }
};

// The same-run baseline of a zap or teardown (1 read, 1 write per SPTE, in order), in wall and
// thread CPU time.
void baseline_both(uint64_t ops, unsigned reads, unsigned writes, double& wall, double& cpu) {
  wall = baseline_ns(sequence(ops, false), reads, writes, &cpu);
}

// Zap of a range fully mapped with 4 KiB leaves: the walk and one write per leaf (an exchange
// only where a D-logged slot needs the leaf's final D: zap.cpp). `logged` runs it in a slot with
// D-bit dirty logging on, where every writable leaf with D clear needs that exchange (the
// leaves are mapped by write faults, so they are writable, and the start cleared every D).
void zap_bench(benchmark::State& state, bool logged) {
  reset_totals();
  const uint64_t pages = uint64_t(state.range(0)) * kPagesPer1G;
  PerIteration per;
  uint64_t flushes = 0;
  for (auto _ : state) {
    HostPlatform p;
    MmuConfig cfg;
    cfg.ept_ad = logged;
    TestVm vm(p, cfg);
    TestVcpu v(vm);
    vm.add_slot(1, 0, pages, 1ull << 32, 1);
    vm.mmu.vcpu_load_root(v);
    for (gfn_t g = 0; g < pages; g++) vm.mmu.map(v, g, logged ? spte::kAccRead | spte::kAccWrite : spte::kAccRead);
    if (logged && vm.mmu.dirty_log_start(v, 0, 1, DirtyMode::dirty_bit) != MemslotError::ok) {
      state.SkipWithError("dirty_log_start failed");
      return;
    }
    const uint64_t f0 = vm.mmu.stats().flushes;
    const double c0 = thread_cpu_ns();
    const auto t0 = Clock::now();
    vm.mmu.zap_range(0, 0, pages);
    const double ours = ns_since(t0);
    const double ours_cpu = thread_cpu_ns() - c0;
    flushes += vm.mmu.stats().flushes - f0;
    if (vm.mmu.stats().leaves[1] != 0) state.SkipWithError("leaves left after the zap");
    double base, base_cpu;
    baseline_both(pages, 1, 1, base, base_cpu);
    report(state, ours, base, pages);
    per.add(ours, base, ours_cpu, base_cpu, pages);
  }
  per.set(state);
  state.counters["gib"] = double(state.range(0));
  state.counters["flushes_per_zap"] = double(flushes) / double(per.ratio.size());
}
void BM_ZapLeaves4K(benchmark::State& s) { zap_bench(s, false); }
void BM_ZapLeaves4KLogged(benchmark::State& s) { zap_bench(s, true); }
BENCHMARK(BM_ZapLeaves4K)->Arg(1)->Iterations(9)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ZapLeaves4K)->Arg(16)->Iterations(3)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ZapLeaves4KLogged)->Arg(1)->Iterations(5)->UseManualTime()->Unit(benchmark::kMillisecond);

// Teardown of a fully mapped root (`gib` GiB of 4 KiB leaves): fast zap, then the deferred work
// runs it to the end (wait_for_teardown), plus the epoch reclaiming every table.
// teardown_ns_per_spte is ns_per_op (per 4 KiB leaf removed); flushes_per_teardown counts the
// TLB flushes it issued (batched: one per pending batch of dead tables and one at the end).
void BM_TeardownRoot(benchmark::State& state) {
  reset_totals();
  const uint64_t pages = uint64_t(state.range(0)) * kPagesPer1G;
  PerIteration per;
  uint64_t flushes = 0;
  for (auto _ : state) {
    HostPlatform p;
    TestVm vm(p);
    TestVcpu v(vm);
    map_4k(vm, v, pages);
    const uint64_t f0 = vm.mmu.stats().flushes;
    const double c0 = thread_cpu_ns();
    const auto t0 = Clock::now();
    vm.mmu.wait_for_teardown(vm.mmu.invalidate_all_roots());
    vm.epoch.barrier();
    const double ours = ns_since(t0);
    const double ours_cpu = thread_cpu_ns() - c0;
    flushes += vm.mmu.stats().flushes - f0;
    double base, base_cpu;
    baseline_both(pages, 1, 1, base, base_cpu);
    report(state, ours, base, pages);
    per.add(ours, base, ours_cpu, base_cpu, pages);
  }
  per.set(state);
  state.counters["flushes_per_teardown"] = double(flushes) / double(per.ratio.size());
}
BENCHMARK(BM_TeardownRoot)->Arg(1)->Iterations(9)->UseManualTime()->Unit(benchmark::kMillisecond);

// Eager splitting (Mmu::split_huge_pages, what dirty logging runs at its start): `gib` GiB
// mapped with huge leaves of `level` (setup, untimed), then split down to 4 KiB; timed per SPTE
// created (512 per split: a 1 GiB leaf becomes 512 2 MiB leaves, each of which becomes 512
// 4 KiB ones). The time includes taking the new tables from the vCPU's page cache and refilling
// it from the platform, as a real split must. Baseline: one 8-byte store per SPTE created, in
// order, over plain memory. KVM's published figure for its eager splitting is about 61 ns per
// SPTE.
void split_bench(benchmark::State& state, int level) {
  reset_totals();
  const uint64_t gib = uint64_t(state.range(0));
  const uint64_t pages = gib * kPagesPer1G;
  const uint64_t huge = pages / spte::pages_per_entry(level);
  const uint64_t created = level == 2 ? huge * 512 : huge * (512 + 512 * 512);
  PerIteration per;
  for (auto _ : state) {
    HostPlatform p;
    p.reserve_pages(tables_for(pages));  // the tables the split creates, in the timed part
    TestVm vm(p);
    TestVcpu v(vm);
    vm.add_slot(1, 0, pages, 1ull << 32, uint8_t(level));
    vm.mmu.vcpu_load_root(v);
    const uint64_t span = spte::pages_per_entry(level);
    for (gfn_t g = 0; g < pages; g += span) vm.mmu.map(v, g, spte::kAccRead | spte::kAccWrite);
    if (vm.mmu.stats().leaves[level] != huge) {
      state.SkipWithError("setup did not map huge leaves");
      return;
    }
    const uint64_t splits0 = vm.mmu.stats().eager_splits;
    const double c0 = thread_cpu_ns();
    const auto t0 = Clock::now();
    const bool ok = vm.mmu.split_huge_pages(v, 0, pages, 1);
    const double ours = ns_since(t0);
    const double ours_cpu = thread_cpu_ns() - c0;
    const MmuStats st = vm.mmu.stats();
    if (!ok || st.leaves[1] != pages || st.leaves[2] != 0 || st.leaves[3] != 0 ||
        st.eager_splits - splits0 != created / 512) {
      state.SkipWithError("split incomplete");
      return;
    }
    double base, base_cpu;
    baseline_both(created, 0, 1, base, base_cpu);
    report(state, ours, base, created);
    per.add(ours, base, ours_cpu, base_cpu, created);
  }
  per.set(state);
  state.counters["gib"] = double(gib);
}
void BM_Split2M(benchmark::State& s) { split_bench(s, 2); }
void BM_Split1G(benchmark::State& s) { split_bench(s, 3); }
BENCHMARK(BM_Split2M)->Arg(4)->Iterations(7)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Split1G)->Arg(4)->Iterations(5)->UseManualTime()->Unit(benchmark::kMillisecond);

// --- Parallel faults -------------------------------------------------------------------------
// Threads are pinned one per core (sched_setaffinity), made ready, and released together; each
// times its own loop, and the group reports how long they really overlapped:
//   overlap = (time every thread was running) / (first start .. last end)
// On a loaded machine two "parallel" workers may run one after the other, which would make any
// scaling figure meaningless: read the scaling beside its overlap.

// The CPUs this process may run on, in order (the pinning targets).
std::vector<int> allowed_cpus() {
  std::vector<int> out;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int c = 0; c < CPU_SETSIZE; c++)
      if (CPU_ISSET(c, &set)) out.push_back(c);
  }
  return out;
}
// Pin the calling thread to one CPU; false if the system refused (then it runs unpinned).
bool pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof(set), &set) == 0;  // 0: the calling thread
}

struct GroupResult {
  double wall_ns = 0;        // first start .. last end
  double overlap = 0;        // fraction of wall_ns during which every thread ran
  double thread_ns_sum = 0;  // sum of each thread's own loop time (wall clock)
  // Sum of each thread's CPU time in its loop (CLOCK_THREAD_CPUTIME_ID): what the work cost
  // while it ran, cache-line stalls included, without the time other processes had the core.
  double thread_cpu_ns_sum = 0;
  // Mean over threads of (CPU time / wall time) in the loop: how much of its own run a thread
  // really had a core. Near 1 on an idle machine; on a loaded one the threads were alive
  // together (overlap) but often not on a core together, and the 2-thread figures say little.
  double on_cpu = 0;
  bool pinned = true;
};


// Runs body(t) on `threads` threads pinned to distinct CPUs (round robin over the allowed ones),
// started together after all are ready.
template <typename Body>
GroupResult run_pinned(unsigned threads, Body body) {
  const std::vector<int> cpus = allowed_cpus();
  std::vector<double> t0(threads), t1(threads), c0(threads), c1(threads);
  std::atomic<unsigned> ready{0};
  std::atomic<bool> go{false};
  std::atomic<bool> all_pinned{true};
  const auto epoch = Clock::now();
  std::vector<std::thread> ts;
  for (unsigned t = 0; t < threads; t++) {
    ts.emplace_back([&, t] {
      if (cpus.empty() || !pin_to(cpus[t % cpus.size()])) all_pinned = false;
      auto ctx = body.prepare(t);  // untimed setup on the thread's own CPU
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) {
      }
      c0[t] = thread_cpu_ns();
      t0[t] = ns_since(epoch);
      body.run(t, ctx);
      t1[t] = ns_since(epoch);
      c1[t] = thread_cpu_ns();
      body.finish(t, ctx);
    });
  }
  // The main thread waits without spinning on a core the workers need.
  while (ready.load() != threads) std::this_thread::sleep_for(std::chrono::microseconds(50));
  go.store(true, std::memory_order_release);
  for (auto& t : ts) t.join();
  GroupResult r;
  const double first = *std::min_element(t0.begin(), t0.end());
  const double last = *std::max_element(t1.begin(), t1.end());
  const double all_start = *std::max_element(t0.begin(), t0.end());
  const double all_end = *std::min_element(t1.begin(), t1.end());
  r.wall_ns = last - first;
  r.overlap = r.wall_ns > 0 ? std::max(0.0, all_end - all_start) / r.wall_ns : 0;
  for (unsigned t = 0; t < threads; t++) {
    r.thread_ns_sum += t1[t] - t0[t];
    r.thread_cpu_ns_sum += c1[t] - c0[t];
    if (t1[t] > t0[t]) r.on_cpu += (c1[t] - c0[t]) / (t1[t] - t0[t]) / threads;
  }
  r.pinned = all_pinned.load();
  return r;
}

// Fault throughput: T threads (vCPUs) fault 4 KiB leaves of one VM, each its own disjoint part
// of one slot (same_range false), or all the same part in different orders (same_range true:
// contention on the same tables; the losers see spurious faults, counted like any other).
struct FaultGroup {
  TestVm& vm;
  uint64_t per_thread;
  bool same_range;
  struct Ctx {
    std::unique_ptr<TestVcpu> v;
    std::unique_ptr<HostCpu> cpu;
    std::vector<uint64_t> order;
  };
  Ctx prepare(unsigned t) {
    Ctx c;
    c.cpu = std::make_unique<HostCpu>(t + 1);
    c.v = std::make_unique<TestVcpu>(vm);
    vm.mmu.vcpu_load_root(*c.v);
    c.order = sequence(per_thread, false);
    std::shuffle(c.order.begin(), c.order.end(), std::mt19937_64(42 + t));
    return c;
  }
  void run(unsigned t, Ctx& c) {
    const uint64_t base = same_range ? 0 : t * per_thread;
    for (uint64_t g : c.order) benchmark::DoNotOptimize(vm.mmu.map(*c.v, base + g, spte::kAccRead));
  }
  void finish(unsigned, Ctx& c) {
    c.v.reset();  // releases the root on the thread's CPU id
    c.cpu.reset();
  }
};

void fault_throughput(benchmark::State& state, bool same_range) {
  reset_totals();
  const unsigned threads = unsigned(state.range(0));
  const uint64_t per_thread = 65536;
  double overlap_sum = 0, thread_ns = 0, cpu_ns_total = 0, base_sum = 0, on_cpu = 0;
  uint64_t runs = 0;
  bool pinned = true;
  for (auto _ : state) {
    HostPlatform p(threads + 1);
    p.reserve_pages(tables_for(per_thread * (same_range ? 1 : threads)));
    TestVm vm(p);
    vm.add_slot(1, 0, per_thread * (same_range ? 1 : threads), 1ull << 32, 1);
    const GroupResult r = run_pinned(threads, FaultGroup{vm, per_thread, same_range});
    // Baseline, same threads pinned the same way: the plain reads/writes of one fault each.
    struct BaseGroup {
      uint64_t n;
      int prepare(unsigned) { return 0; }
      void run(unsigned, int&) { benchmark::DoNotOptimize(baseline_ns(sequence(n, true), 4, 1)); }
      void finish(unsigned, int&) {}
    };
    const GroupResult b = run_pinned(threads, BaseGroup{per_thread});
    report(state, r.wall_ns, b.wall_ns, per_thread * threads);
    overlap_sum += r.overlap;
    thread_ns += r.thread_ns_sum;
    cpu_ns_total += r.thread_cpu_ns_sum;
    on_cpu += r.on_cpu;
    base_sum += b.overlap;
    pinned = pinned && r.pinned && b.pinned;
    runs++;
  }
  state.counters["faults_per_sec"] = t_totals.ops / (t_totals.ours / 1e9);
  // Each thread's own time per fault (what a vCPU pays), averaged over threads and runs.
  state.counters["thread_ns_per_fault"] = thread_ns / t_totals.ops;
  state.counters["thread_cpu_ns_per_fault"] = cpu_ns_total / t_totals.ops;
  state.counters["overlap"] = overlap_sum / double(runs);
  state.counters["baseline_overlap"] = base_sum / double(runs);
  state.counters["on_cpu"] = on_cpu / double(runs);
  state.counters["pinned"] = pinned ? 1 : 0;
  state.counters["threads"] = threads;
}
void BM_FaultThroughput(benchmark::State& s) { fault_throughput(s, false); }
void BM_FaultThroughputSameRange(benchmark::State& s) { fault_throughput(s, true); }
BENCHMARK(BM_FaultThroughput)->Arg(1)->Arg(2)->Iterations(15)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FaultThroughputSameRange)->Arg(2)->Iterations(15)->UseManualTime()->Unit(benchmark::kMillisecond);

// The fault path's shared writes alone, old against new in the same run: per "fault", a reader
// section of the MMU lock and the two statistics counters the fault bumps (outcome, leaves).
//   old: RwSpinLock (one shared word: CAS + fetch_sub) and shared atomic counters, as before
//        the per-CPU lock and counters
//   new: PerCpuRwLock (the CPU's own line) and PerCpuCounters
// With one thread both cost their uncontended atomics; with two, the old one bounces lines.
template <bool kNew>
struct SectionGroup {
  static constexpr uint64_t kOps = 4'000'000;
  RwSpinLock& old_lock;
  PerCpuRwLock& new_lock;
  Atomic<uint64_t>* old_counters;  // [2], on one line as in the old Mmu::Counters
  PerCpuCounters<2>& new_counters;
  int prepare(unsigned) { return 0; }
  void run(unsigned t, int&) NO_THREAD_SAFETY_ANALYSIS {
    const unsigned cpu = t + 1;
    for (uint64_t i = 0; i < kOps; i++) {
      if constexpr (kNew) {
        new_lock.lock_shared(cpu);
        new_counters.add(cpu, 0, 1);
        new_counters.add(cpu, 1, 1);
        new_lock.unlock_shared(cpu);
      } else {
        old_lock.lock_shared();
        old_counters[0].fetch_add(1, Order::relaxed);
        old_counters[1].fetch_add(1, Order::relaxed);
        old_lock.unlock_shared();
      }
    }
  }
  void finish(unsigned, int&) {}
};
template <bool kNew>
void BM_ReaderSection(benchmark::State& state) {
  reset_totals();
  const unsigned threads = unsigned(state.range(0));
  double overlap_sum = 0, thread_ns = 0, cpu_ns_total = 0, on_cpu = 0;
  uint64_t runs = 0;
  for (auto _ : state) {
    auto old_lock = std::make_unique<RwSpinLock>();
    auto new_lock = std::make_unique<PerCpuRwLock>();
    auto new_counters = std::make_unique<PerCpuCounters<2>>();
    struct alignas(64) Line {
      Atomic<uint64_t> c[2];
    };
    auto old_counters = std::make_unique<Line>();
    const GroupResult r =
        run_pinned(threads, SectionGroup<kNew>{*old_lock, *new_lock, old_counters->c, *new_counters});
    const uint64_t ops = SectionGroup<kNew>::kOps * threads;
    const uint64_t counted = kNew ? new_counters->sum(0) : old_counters->c[0].load(Order::relaxed);
    if (counted != ops) state.SkipWithError("lost counter updates");
    report(state, r.wall_ns, r.wall_ns, ops);  // no plain-memory baseline: old vs new is the point
    overlap_sum += r.overlap;
    thread_ns += r.thread_ns_sum;
    cpu_ns_total += r.thread_cpu_ns_sum;
    on_cpu += r.on_cpu;
    runs++;
  }
  state.counters["thread_cpu_ns_per_section"] = cpu_ns_total / t_totals.ops;
  state.counters["on_cpu"] = on_cpu / double(runs);
  state.counters["sections_per_sec"] = t_totals.ops / (t_totals.ours / 1e9);
  state.counters["thread_ns_per_section"] = thread_ns / t_totals.ops;
  state.counters["overlap"] = overlap_sum / double(runs);
  state.counters["threads"] = threads;
}
void BM_ReaderSectionOld(benchmark::State& s) { BM_ReaderSection<false>(s); }
void BM_ReaderSectionNew(benchmark::State& s) { BM_ReaderSection<true>(s); }
BENCHMARK(BM_ReaderSectionOld)->Arg(1)->Arg(2)->Iterations(5)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ReaderSectionNew)->Arg(1)->Arg(2)->Iterations(5)->UseManualTime()->Unit(benchmark::kMillisecond);

// --- Faults on the valid root while invalid roots are torn down ---------------------------
// Issue 13, item 2: the teardown of invalid roots (after a fast zap) must not block faults on
// the valid root. Two threads, pinned as above: thread 0 (a vCPU) faults `faults` 4 KiB pages
// of slot 1 in random order on the valid root; thread 1 runs the deferred teardown of a pile
// of `pile` invalid roots (each 1 GiB of 4 KiB leaves: 512 tables) with wait_for_teardown, root
// by root (steps of 512 units back to back: what a waiter -- hv's INVALIDATE_ROOTS with wait,
// fast-zap backpressure, VM destruction -- does, the heaviest teardown load), until the faults
// are done or the pile is gone. The same-run baseline is the same fault loop in an identical VM
// (pile built and queued too) while thread 1 does nothing. Reported:
//   fault_ratio          faults/s during teardown / faults/s alone (median over iterations;
//                        1.0 = the teardown costs the faults nothing)
//   fault_cpu_ratio      the same from the fault thread's CPU time (CLOCK_THREAD_CPUTIME_ID):
//                        a fault spinning for the lock burns CPU, a preempted one does not, so
//                        this is the figure to read on a loaded machine
//   p99_ratio, max_ns    per-fault latency (TSC around each map()): 99th percentile against
//                        the baseline's, and the worst fault while the teardown ran
//   overlap              how long both threads really ran at once (run_pinned): below 1 the
//                        pile ran out before the faults were done, or they did not run together
//   td_steps_per_kfault  teardown steps (512 units each) thread 1 ran per 1000 faults of thread 0
struct TeardownFaultShared {
  TeardownFaultShared(TestVm& m, uint64_t f, unsigned p, bool td) : vm(m), faults(f), pile(p), teardown(td) {}
  TestVm& vm;
  uint64_t faults;
  unsigned pile;
  bool teardown;  // false: the baseline (thread 1 builds and queues the pile, then waits)
  std::atomic<bool> pile_ready{false};
  std::atomic<bool> faults_done{false};
  uint64_t last_ticket = 0;
  std::vector<uint64_t> tickets;  // one per pile root, oldest first
  uint64_t td_units = 0;  // teardown steps run while the faults ran
  uint64_t not_fixed = 0;
  std::vector<uint64_t> lat_cycles;
  double loop_ns = 0, loop_cycles = 0, loop_cpu_ns = 0;
};
constexpr gfn_t kPileBase = kPagesPer1G;  // slot 2: 1 GiB at 1 GiB, 1 GiB-aligned backing
struct TeardownFaultGroup {
  TeardownFaultShared* sh;
  struct Ctx {
    std::unique_ptr<HostCpu> cpu;
    std::unique_ptr<TestVcpu> v;
    std::vector<uint64_t> order;
  };
  Ctx prepare(unsigned t) {
    Ctx c;
    TestVm& vm = sh->vm;
    c.cpu = std::make_unique<HostCpu>(t + 1);
    if (t == 1) {
      // The pile: fault the slot's 1 GiB leaf, split it to 4 KiB (quick to build), invalidate.
      // Every teardown lands in this CPU's queue (backlog 0: no backpressure).
      c.v = std::make_unique<TestVcpu>(vm);
      for (unsigned k = 0; k < sh->pile; k++) {
        vm.mmu.vcpu_load_root(*c.v);
        vm.mmu.map(*c.v, kPileBase, spte::kAccRead | spte::kAccWrite);
        vm.mmu.split_huge_pages(*c.v, kPileBase, kPileBase + kPagesPer1G, 1);
        sh->last_ticket = vm.mmu.invalidate_all_roots();
        sh->tickets.push_back(sh->last_ticket);
      }
      sh->pile_ready.store(true, std::memory_order_release);
    } else {
      while (!sh->pile_ready.load(std::memory_order_acquire)) std::this_thread::sleep_for(std::chrono::microseconds(50));
      c.v = std::make_unique<TestVcpu>(vm);
      vm.mmu.vcpu_load_root(*c.v);  // the fresh, valid root
      c.order = sequence(sh->faults, true);
      sh->lat_cycles.assign(sh->faults, 0);
    }
    return c;
  }
  void run(unsigned t, Ctx& c) {
    TestVm& vm = sh->vm;
    if (t == 0) {
      const double cpu0 = thread_cpu_ns();
      const auto t0 = Clock::now();
      const uint64_t c0 = __builtin_ia32_rdtsc();
      uint64_t i = 0, bad = 0;
      for (uint64_t g : c.order) {
        const uint64_t a = __builtin_ia32_rdtsc();
        const FaultOutcome o = vm.mmu.map(*c.v, g, spte::kAccRead);
        sh->lat_cycles[i++] = __builtin_ia32_rdtsc() - a;
        bad += o != FaultOutcome::fixed;
      }
      sh->loop_cycles = double(__builtin_ia32_rdtsc() - c0);
      sh->loop_ns = ns_since(t0);
      sh->loop_cpu_ns = thread_cpu_ns() - cpu0;
      sh->not_fixed = bad;
      sh->faults_done.store(true, std::memory_order_release);
    } else if (sh->teardown) {
      // Root by root, as a waiter does (wait_for_teardown: steps of 512 units, no epoch polls
      // in between), until the faults are done or the pile is gone.
      const uint64_t steps0 = vm.mmu.stats().teardown_steps;
      for (uint64_t ticket : sh->tickets) {
        if (sh->faults_done.load(std::memory_order_acquire)) break;
        vm.mmu.wait_for_teardown(ticket);
      }
      sh->td_units = vm.mmu.stats().teardown_steps - steps0;
    }
  }
  void finish(unsigned t, Ctx& c) {
    if (t == 1) {
      // The rest, untimed, and only once the faults are done (not to disturb the baseline).
      while (!sh->faults_done.load(std::memory_order_acquire)) std::this_thread::sleep_for(std::chrono::microseconds(50));
      sh->vm.mmu.wait_for_teardown(sh->last_ticket);
    }
    c.v.reset();
    c.cpu.reset();
  }
};
double percentile(std::vector<uint64_t> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return double(v[std::min(v.size() - 1, size_t(q * double(v.size())))]);
}
void BM_FaultDuringTeardown(benchmark::State& state) {
  reset_totals();
  const unsigned pile = unsigned(state.range(0));
  const uint64_t faults = 32768;
  std::vector<double> ratio, cpu_ratio, p99_ratio;
  double overlap_sum = 0, max_ns = 0, units = 0, td_p99 = 0, base_p99 = 0;
  uint64_t runs = 0;
  bool pinned = true;
  for (auto _ : state) {
    double rate[2] = {}, cpu_rate[2] = {}, p99[2] = {}, mx[2] = {};
    GroupResult gr[2];
    for (int k = 0; k < 2; k++) {
      // Alternate which of the two runs comes first: the first run of an iteration pays for
      // warming the allocator and caches, which would otherwise favour the second.
      const int with_td = runs % 2 ? 1 - k : k;
      HostPlatform p(3);
      MmuConfig cfg;
      cfg.max_teardown_backlog = 0;
      TestVm vm(p, cfg);
      vm.add_slot(1, 0, faults, 1ull << 32, 1);
      vm.add_slot(2, kPileBase, kPagesPer1G, 8 * kGiB, 3);
      TeardownFaultShared sh(vm, faults, pile, with_td != 0);
      gr[with_td] = run_pinned(2, TeardownFaultGroup{&sh});
      // Every fault installed its leaf; then everything (the pile, the fault vCPU's root,
      // released at its finish) torn down leaves no leaf and no table behind.
      vm.mmu.wait_for_teardown(vm.mmu.roots().last_ticket());
      const MmuStats st = vm.mmu.stats();
      if (sh.not_fixed != 0 || st.leaves[1] + st.leaves[2] + st.leaves[3] != 0 || st.tables_live != 0) {
        state.SkipWithError("a fault did not install its leaf, or the teardown left something");
        return;
      }
      const double ns_per_cycle = sh.loop_ns / sh.loop_cycles;
      rate[with_td] = double(faults) / sh.loop_ns * 1e9;
      cpu_rate[with_td] = double(faults) / sh.loop_cpu_ns * 1e9;
      p99[with_td] = percentile(sh.lat_cycles, 0.99) * ns_per_cycle;
      mx[with_td] = percentile(sh.lat_cycles, 1.0) * ns_per_cycle;
      if (with_td) {
        units += double(sh.td_units);
        report(state, sh.loop_ns, 0, faults);
      }
    }
    ratio.push_back(rate[1] / rate[0]);
    cpu_ratio.push_back(cpu_rate[1] / cpu_rate[0]);
    p99_ratio.push_back(p99[1] / p99[0]);
    td_p99 += p99[1];
    base_p99 += p99[0];
    max_ns = std::max(max_ns, mx[1]);
    overlap_sum += gr[1].overlap;
    pinned = pinned && gr[0].pinned && gr[1].pinned;
    runs++;
  }
  state.counters["fault_ratio"] = PerIteration::median(ratio);
  state.counters["fault_ratio_min"] = *std::min_element(ratio.begin(), ratio.end());
  state.counters["fault_cpu_ratio"] = PerIteration::median(cpu_ratio);
  state.counters["p99_ratio"] = PerIteration::median(p99_ratio);
  state.counters["p99_ns"] = td_p99 / double(runs);
  state.counters["baseline_p99_ns"] = base_p99 / double(runs);
  state.counters["max_ns"] = max_ns;
  state.counters["overlap"] = overlap_sum / double(runs);
  state.counters["pinned"] = pinned ? 1 : 0;
  state.counters["td_steps_per_kfault"] = 1000 * units / t_totals.ops;
  state.counters.erase("baseline_ns_per_op");
  state.counters.erase("ratio");
}
BENCHMARK(BM_FaultDuringTeardown)->Arg(16)->Iterations(5)->UseManualTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
