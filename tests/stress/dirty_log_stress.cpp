// Dirty logging under real threads: no dirty page is ever lost across harvests.
//
// Two vCPU threads write random pages of a logged 4 MiB slot (a hot 64-page part gets most of
// the writes, so pages are written again right after being harvested) through the CPU model of
// tests/host/dirty_cpu.h: a walk that checks W and sets A/D with a CAS, a TLB that keeps
// "writable, D known" translations until a flush starts (so writes through stale translations
// between the MMU's W/D clear and its flush happen), and, for pml, a log filled with the D
// update and drained both at the writer's safe points (hv's drain at every exit) and by the
// harvest (Platform::drain_dirty_logs; without that drain the final harvest misses the writes
// logged since the writers' last safe point, and this test fails). A write that finds no writable leaf takes the EPT violation (Mmu::map) and retries.
// A harvester thread harvests over and over and, between harvests, fast-zaps (every root is
// invalidated and torn down while the writers run on it) or zaps part of the slot.
//
// The invariant, for every mechanism: before each write a writer reads how many harvests have
// completed (h0); the page must then be reported by a harvest numbered h0 or later, i.e. by the
// harvest during which the write happened or a later one. After the writers stop, one last
// harvest runs, and every page's latest harvest must be >= the largest h0 any write to it saw.
// A mechanism that let a write slip between its bit and its W (or D) clear, or that skipped
// the flush, fails this (the TLB model keeps writing through what a missing flush leaves).
//
// HV_STRESS_SCALE multiplies the harvest count; HV_STRESS_MAX_MS bounds the run (default 20 s).
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

#include "tests/host/dirty_cpu.h"
#include "tests/host/mmu_fixture.h"
#include "tests/stress/stress_seed.h"

using namespace mmu;
using hvtest::DirtyCpu;
using hvtest::HostCpu;
using hvtest::HostPlatform;
using hvtest::kGiB;
using hvtest::kPagesPer2M;
using hvtest::PmlLog;
using hvtest::SplitMix;
using hvtest::TestVm;
using hvtest::TlbGeneration;

namespace {

constexpr gfn_t kBase = 8 * kPagesPer2M;
constexpr uint64_t kPages = 2 * kPagesPer2M;
constexpr uint64_t kHot = 64;
constexpr hpa_t kBacking = 16 * kGiB;
constexpr uint32_t kSlot = 1;
constexpr unsigned kWriters = 2;

uint64_t env_or(const char* name, uint64_t dflt) {
  const char* v = std::getenv(name);
  return (v != nullptr && *v != '\0') ? std::strtoull(v, nullptr, 0) : dflt;
}

struct WriterResult {
  std::vector<int64_t> max_h0 = std::vector<int64_t>(kPages, -1);  // -1: never written
  uint64_t writes = 0, via_tlb = 0, faults = 0;
};

void run(DirtyMode mode, const char* name) {
  const uint64_t seed = hvtest::stress_seed(name);
  const uint64_t target = 300 * env_or("HV_STRESS_SCALE", 1);
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(env_or("HV_STRESS_MAX_MS", 60000));
  HostPlatform p(kWriters + 2);
  // Before the VM, and the hooks reset before it goes (its destructor flushes).
  TlbGeneration tlb;
  PmlLog logs[kWriters];
  MmuConfig cfg;
  cfg.ept_ad = true;
  cfg.max_level = 2;
  TestVm vm(p, cfg);
  REQUIRE(vm.add_slot(kSlot, kBase, kPages, kBacking, 2) == MemslotError::ok);
  struct HookReset {
    HostPlatform& p;
    ~HookReset() {
      p.set_flush_hook({});
      p.set_drain_hook({});
    }
  } hook_reset{p};
  p.set_flush_hook([&](uint64_t) { tlb.flush(); });
  p.set_drain_hook([&](uint64_t) {
    for (PmlLog& l : logs) l.drain(vm.mmu);
  });

  VcpuMmu main_v;
  vm.mmu.vcpu_init(main_v, 0);
  {
    // Huge leaves before the start, so that it has something to split.
    DirtyCpu warm(vm.mmu, main_v, tlb, kBase, kPages);
    REQUIRE(warm.write_faulting(0));
    REQUIRE(warm.write_faulting(kPagesPer2M));
    REQUIRE(vm.mmu.stats().leaves[2] == 2);
  }
  REQUIRE(vm.mmu.dirty_log_start(main_v, 0, kSlot, mode) == MemslotError::ok);
  REQUIRE(vm.mmu.stats().leaves[2] == 0);

  std::atomic<uint64_t> harvests_done{0};  // harvests that have returned
  // The writers' progress, published at their safe points: the harvester goes on until the run
  // did what it is about (enough writes, some through a cached translation, and for write
  // protection some faults), however the threads were scheduled; only the deadline ends a run
  // that cannot get there.
  constexpr uint64_t kMinWrites = 2000;
  std::atomic<uint64_t> progress_writes{0}, progress_tlb{0}, progress_faults{0};
  std::atomic<bool> stop{false};
  // The writers stay on their roots until the final harvest is done: a root released before it
  // would be torn down and mark the whole slot dirty (dirty_log_root_gone), hiding a lost write.
  std::atomic<unsigned> writers_stopped{0};
  std::atomic<bool> final_done{false};
  std::vector<int64_t> last_harvest(kPages, -1);  // per page: the latest harvest reporting it
  std::vector<uint64_t> bm(Mmu::dirty_log_words(kPages));
  uint64_t fast_zaps = 0, zaps = 0, harvested_pages = 0, harvest_errors = 0;

  // No REQUIRE on other threads (Catch2 is not thread-safe): errors are counted.
  auto harvest = [&](VcpuMmu& v, uint64_t k) {
    std::fill(bm.begin(), bm.end(), 0);
    uint64_t n = 0;
    if (vm.mmu.dirty_log_harvest(v, 0, kSlot, bm.data(), bm.size(), &n) != MemslotError::ok) harvest_errors++;
    for (uint64_t i = 0; i < kPages; i++)
      if ((bm[i / 64] >> (i % 64)) & 1) last_harvest[i] = static_cast<int64_t>(k);
    harvested_pages += n;
  };

  WriterResult results[kWriters];
  std::vector<std::thread> threads;
  for (unsigned w = 0; w < kWriters; w++) {
    threads.emplace_back([&, w] {
      HostCpu cpu_scope(1 + w);
      SplitMix rng(seed + w + 1);
      VcpuMmu v;
      vm.mmu.vcpu_init(v, 0);
      DirtyCpu cpu(vm.mmu, v, tlb, kBase, kPages, mode == DirtyMode::pml ? &logs[w] : nullptr);
      WriterResult& r = results[w];
      uint64_t ops = 0;
      struct {
        uint64_t writes, via_tlb, faults;
      } shown = {0, 0, 0};  // what this writer has added to the progress counters
      unsigned tail = 0;
      for (;;) {
        // After the stop, 16 more writes without a safe point: what a vCPU logged since its last
        // exit waits in its log, and only the final harvest's drain can report it (pml).
        if (stop.load(std::memory_order_acquire) && tail++ >= 16) break;
        const uint64_t i = rng.below(4) != 0 ? rng.below(kHot) : rng.below(kPages);
        // Acquire: pairs with the harvester's release after a harvest returned; the write below
        // comes after that return.
        const int64_t h0 = static_cast<int64_t>(harvests_done.load(std::memory_order_acquire));
        bool via_tlb = false;
        bool wrote = cpu.write(i, &via_tlb);
        while (!wrote) {
          r.faults++;
          cpu.fault(i);
          wrote = cpu.write(i, &via_tlb);
        }
        r.writes++;
        if (via_tlb) r.via_tlb++;
        if (h0 > r.max_h0[i]) r.max_h0[i] = h0;
        if (++ops % 64 == 0 && tail == 0) {
          progress_writes.fetch_add(r.writes - shown.writes, std::memory_order_relaxed);
          progress_tlb.fetch_add(r.via_tlb - shown.via_tlb, std::memory_order_relaxed);
          progress_faults.fetch_add(r.faults - shown.faults, std::memory_order_relaxed);
          shown = {r.writes, r.via_tlb, r.faults};
          // A safe point: an "exit" (pml: hv drains the vCPU's log at every VM exit, so marks
          // land at any time, also between a harvest's drain and its take), then an "entry" (a
          // fast zap moves us to a fresh root) and deferred work. No drain when the writer
          // stops: the final harvest's drain must report what is left in the logs.
          if (mode == DirtyMode::pml) logs[w].drain(vm.mmu);
          Root* before = v.root();
          vm.mmu.vcpu_load_root(v);
          if (v.root() != before) cpu.drop_tlb();
          vm.mmu.run_deferred_work(256);
          std::this_thread::yield();
        }
      }
      writers_stopped.fetch_add(1, std::memory_order_acq_rel);
      while (!final_done.load(std::memory_order_acquire)) std::this_thread::yield();
      vm.mmu.vcpu_release(v);
    });
  }
  threads.emplace_back([&] {
    HostCpu cpu_scope(1 + kWriters);
    SplitMix rng(seed);
    VcpuMmu v;
    vm.mmu.vcpu_init(v, 0);
    auto enough = [&](uint64_t k) {
      return k >= target && progress_writes.load(std::memory_order_relaxed) >= kMinWrites &&
             progress_tlb.load(std::memory_order_relaxed) > 0 &&
             (mode != DirtyMode::write_protect || progress_faults.load(std::memory_order_relaxed) > 0);
    };
    for (uint64_t k = 0; !enough(k) && std::chrono::steady_clock::now() < deadline; k++) {
      harvest(v, k);
      // Release: the harvest has returned (see the writers' acquire).
      harvests_done.store(k + 1, std::memory_order_release);
      const uint64_t what = rng.below(16);
      if (what == 0) {
        vm.mmu.invalidate_all_roots();
        fast_zaps++;
      } else if (what == 1) {
        const gfn_t start = kBase + rng.below(kPages);
        vm.mmu.zap_range(0, start, start + 1 + rng.below(64));
        zaps++;
      }
      vm.mmu.run_deferred_work(512);
      std::this_thread::yield();
    }
    stop.store(true, std::memory_order_release);
    vm.mmu.vcpu_release(v);
  });
  // Every write has happened (acquire: pairs with each writer's increment after its last
  // write): one last harvest reports what is left, with the writers still on their roots. The
  // harvester thread (the last one) set `stop` and is joined first, so this harvest runs alone.
  threads.back().join();
  while (writers_stopped.load(std::memory_order_acquire) < kWriters) std::this_thread::yield();
  const uint64_t final_k = harvests_done.load();
  harvest(main_v, final_k);
  final_done.store(true, std::memory_order_release);
  for (size_t t = 0; t + 1 < threads.size(); t++) threads[t].join();
  uint64_t writes = 0, via_tlb = 0, faults = 0, lost = 0;
  for (const WriterResult& r : results) {
    writes += r.writes;
    via_tlb += r.via_tlb;
    faults += r.faults;
    for (uint64_t i = 0; i < kPages; i++) {
      if (r.max_h0[i] >= 0 && last_harvest[i] < r.max_h0[i]) {
        if (lost++ < 10)
          std::printf("[%s] LOST: page %llu written after harvest %lld returned, last reported by harvest %lld\n",
                      name, (unsigned long long)i, (long long)r.max_h0[i] - 1, (long long)last_harvest[i]);
      }
    }
  }
  INFO(name << ": " << final_k << " harvests, " << harvested_pages << " pages harvested, " << writes
            << " writes (" << via_tlb << " through the TLB model), " << faults << " write faults, "
            << fast_zaps << " fast zaps, " << zaps << " zaps");
  std::printf("[%s] %llu harvests, %llu pages harvested, %llu writes (%llu via TLB), %llu faults, %llu fast zaps, %llu zaps\n",
              name, (unsigned long long)final_k, (unsigned long long)harvested_pages,
              (unsigned long long)writes, (unsigned long long)via_tlb, (unsigned long long)faults,
              (unsigned long long)fast_zaps, (unsigned long long)zaps);
  // CHECK, not REQUIRE: the VM is torn down below whatever the verdict.
  CHECK(harvest_errors == 0);
  CHECK(lost == 0);
  // The run did what it is about (else it proves nothing).
  CHECK(final_k >= 20);
  CHECK(writes >= kMinWrites);
  CHECK(via_tlb > 0);
  if (mode == DirtyMode::write_protect) CHECK(faults > 0);

  REQUIRE(vm.mmu.dirty_log_stop(main_v, 0, kSlot) == MemslotError::ok);
  vm.mmu.vcpu_release(main_v);
}

}  // namespace

TEST_CASE("dirty log stress: write protection loses no write", "[stress][dirtylog]") {
  run(DirtyMode::write_protect, "dirtylog-wp");
}

TEST_CASE("dirty log stress: EPT dirty bits lose no write", "[stress][dirtylog]") {
  run(DirtyMode::dirty_bit, "dirtylog-ad");
}

TEST_CASE("dirty log stress: PML (the log, plus huge leaves' D) loses no write", "[stress][dirtylog]") {
  run(DirtyMode::pml, "dirtylog-pml");
}
