// MMU benchmarks (Google Benchmark; run in the host-release preset by `tools/hv bench`).
//
// Each benchmark times our operation and, in the same run, a baseline: the same number of
// SPTE-sized (8-byte) reads and writes done with plain memory operations on an array of the
// same size, in the same order. Counters: ns per operation for both, and ratio = ours/baseline.
// Nothing here asserts a time.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

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

// The baseline: `reads` loads and `writes` stores of 8-byte words per operation, at the word
// an SPTE of that operation would live in (index order given), over plain memory.
double baseline_ns(const std::vector<uint64_t>& order, unsigned reads, unsigned writes) {
  std::vector<uint64_t> mem(order.size() + 8, 0);
  uint64_t sink = 0;
  const auto t0 = Clock::now();
  for (uint64_t i : order) {
    for (unsigned r = 0; r < reads; r++) sink += reinterpret_cast<volatile uint64_t&>(mem[i + r]);
    for (unsigned w = 0; w < writes; w++) reinterpret_cast<volatile uint64_t&>(mem[i]) = sink + w;
  }
  const double ns = ns_since(t0);
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

std::vector<uint64_t> sequence(uint64_t n, bool shuffle) {
  std::vector<uint64_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  if (shuffle) std::shuffle(v.begin(), v.end(), std::mt19937_64(42));
  return v;
}

// 4 KiB faults: each walks 4 levels (4 reads) and writes one leaf (plus tables, amortized).
void fault_4k(benchmark::State& state, bool random) {
  reset_totals();
  const uint64_t n = uint64_t(state.range(0));
  const auto order = sequence(n, random);
  for (auto _ : state) {
    HostPlatform p;
    TestVm vm(p);
    vm.add_slot(1, 0, n, 1ull << 32, 1);
    TestVcpu v(vm);
    vm.mmu.vcpu_load_root(v);
    const auto t0 = Clock::now();
    for (uint64_t g : order) benchmark::DoNotOptimize(vm.mmu.map(v, g, spte::kAccRead));
    const double ours = ns_since(t0);
    report(state, ours, baseline_ns(order, 4, 1), n);
  }
}
void BM_Fault4K_Sequential(benchmark::State& s) { fault_4k(s, false); }
void BM_Fault4K_Random(benchmark::State& s) { fault_4k(s, true); }
BENCHMARK(BM_Fault4K_Sequential)->Arg(32768)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Fault4K_Random)->Arg(32768)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_Fault2M(benchmark::State& state) {
  reset_totals();
  const uint64_t n = uint64_t(state.range(0));  // 2 MiB leaves
  const auto order = sequence(n, false);
  for (auto _ : state) {
    HostPlatform p;
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

// Map `gib` GiB with 4 KiB leaves (setup, untimed).
void map_4k(TestVm& vm, TestVcpu& v, uint64_t pages) {
  vm.add_slot(1, 0, pages, 1ull << 32, 1);
  vm.mmu.vcpu_load_root(v);
  for (gfn_t g = 0; g < pages; g++) vm.mmu.map(v, g, spte::kAccRead);
}

// Zap of a range fully mapped with 4 KiB leaves: one exchange per leaf, plus the walk.
void BM_ZapLeaves4K(benchmark::State& state) {
  reset_totals();
  const uint64_t pages = uint64_t(state.range(0)) * kPagesPer1G;
  for (auto _ : state) {
    HostPlatform p;
    TestVm vm(p);
    TestVcpu v(vm);
    map_4k(vm, v, pages);
    const auto t0 = Clock::now();
    vm.mmu.zap_range(0, 0, pages);
    const double ours = ns_since(t0);
    report(state, ours, baseline_ns(sequence(pages, false), 1, 1), pages);
    state.counters["gib"] = double(state.range(0));
  }
}
BENCHMARK(BM_ZapLeaves4K)->Arg(1)->Arg(16)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);

// Teardown of a fully mapped root (1 GiB of 4 KiB leaves): fast zap, then the deferred work
// runs it to the end (wait_for_teardown), plus the epoch reclaiming every table.
void BM_TeardownRoot(benchmark::State& state) {
  reset_totals();
  const uint64_t pages = uint64_t(state.range(0)) * kPagesPer1G;
  for (auto _ : state) {
    HostPlatform p;
    TestVm vm(p);
    TestVcpu v(vm);
    map_4k(vm, v, pages);
    const auto t0 = Clock::now();
    vm.mmu.wait_for_teardown(vm.mmu.invalidate_all_roots());
    vm.epoch.barrier();
    const double ours = ns_since(t0);
    report(state, ours, baseline_ns(sequence(pages, false), 1, 1), pages);
  }
}
BENCHMARK(BM_TeardownRoot)->Arg(1)->Iterations(3)->UseManualTime()->Unit(benchmark::kMillisecond);

// Fault throughput with T threads (vCPUs), each faulting its own part of one slot.
void BM_FaultThroughput(benchmark::State& state) {
  reset_totals();
  const unsigned threads = unsigned(state.range(0));
  const uint64_t per_thread = 16384;
  for (auto _ : state) {
    HostPlatform p(threads + 1);
    TestVm vm(p);
    vm.add_slot(1, 0, per_thread * threads, 1ull << 32, 1);
    std::vector<std::thread> ts;
    std::atomic<unsigned> ready{0};
    std::atomic<bool> go{false};
    double ours = 0;
    for (unsigned t = 0; t < threads; t++) {
      ts.emplace_back([&, t] {
        HostCpu cpu(t + 1);
        TestVcpu v(vm);
        vm.mmu.vcpu_load_root(v);
        const auto order = sequence(per_thread, true);
        ready++;
        while (!go.load()) {
        }
        for (uint64_t g : order) vm.mmu.map(v, t * per_thread + g, spte::kAccRead);
      });
    }
    while (ready.load() != threads) {
    }
    const auto t0 = Clock::now();
    go = true;
    for (auto& t : ts) t.join();
    ours = ns_since(t0);
    // Baseline with the same threads: the same plain reads/writes per fault.
    // Each thread times its own loop; the slowest one is the wall time of the group.
    std::vector<std::thread> bs;
    std::vector<double> times(threads);
    for (unsigned t = 0; t < threads; t++)
      bs.emplace_back([&, t] { times[t] = baseline_ns(sequence(per_thread, true), 4, 1); });
    for (auto& t : bs) t.join();
    const double base = *std::max_element(times.begin(), times.end());
    report(state, ours, base, per_thread * threads);
    state.counters["faults_per_sec"] = t_totals.ops / (t_totals.ours / 1e9);
  }
}
BENCHMARK(BM_FaultThroughput)->Arg(1)->Arg(2)->UseManualTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
