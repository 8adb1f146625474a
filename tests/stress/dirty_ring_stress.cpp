// The dirty ring (mmu/dirty_ring.h) under real threads: one producer (the vCPU) and one consumer
// (the harvester), no lock between them. Run under TSan too (the entries are plain memory: a
// missing acquire/release pair is a reported race, not just a rare wrong value).
//
// The producer pushes the sequence 0, 1, 2, ... (slot and as_id derived from the number). Two
// modes: "stalling" stops pushing while soft_full() says so (the vCPU waiting at a safe point
// for the consumer), so no push may fail; "overrunning" pushes regardless and records the
// numbers whose push failed. The consumer reaps in random batch sizes and checks, for every
// entry, that it is exactly the next number the producer pushed successfully (nothing lost,
// duplicated, reordered or torn), and that used() never exceeds the capacity.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdio>
#include <thread>
#include <vector>

#include "mmu/dirty_ring.h"
#include "tests/host/host_platform.h"
#include "tests/stress/stress_seed.h"

using mmu::DirtyRing;
using mmu::DirtyRingEntry;
using hvtest::HostPlatform;
using hvtest::SplitMix;

namespace {

void run(bool stalling, const char* name) {
  const uint64_t seed = hvtest::stress_seed(name);
  constexpr uint64_t kItems = 400000;
  HostPlatform p;
  DirtyRing* ring = DirtyRing::create(p, 256, 32);
  REQUIRE(ring != nullptr);
  std::vector<uint8_t> failed(kItems, 0);  // producer-only until joined
  std::atomic<bool> producer_done{false};
  uint64_t stalls = 0;
  std::thread producer([&] {
    SplitMix rng(seed + 1);
    for (uint64_t k = 0; k < kItems; k++) {
      if (stalling) {
        while (ring->soft_full()) {
          stalls++;
          std::this_thread::yield();
        }
      }
      if (!ring->push(static_cast<uint32_t>(k % 61), static_cast<uint32_t>(k & 1), k)) failed[k] = 1;
      if (rng.below(64) == 0) std::this_thread::yield();
    }
    producer_done.store(true, std::memory_order_release);
  });
  // The consumer: this thread. Numbers it received, in order.
  std::vector<uint64_t> got;
  got.reserve(kItems);
  uint64_t bad_entries = 0, over_capacity = 0;
  SplitMix rng(seed);
  std::vector<DirtyRingEntry> out(256);
  for (;;) {
    // Read "done" before the reap: if it was done, this reap sees everything it pushed.
    const bool done = producer_done.load(std::memory_order_acquire);
    if (ring->used() > ring->capacity()) over_capacity++;
    const uint32_t n = ring->reap(out.data(), 1 + static_cast<uint32_t>(rng.below(256)));
    for (uint32_t i = 0; i < n; i++) {
      const DirtyRingEntry& e = out[i];
      if (e.slot != e.offset % 61 || e.as_id != (e.offset & 1)) bad_entries++;
      got.push_back(e.offset);
    }
    if (done && n == 0 && ring->used() == 0) break;
    if (rng.below(8) == 0) std::this_thread::yield();
  }
  producer.join();
  // Expected: every number whose push succeeded, in order.
  uint64_t mismatches = 0, ok_pushes = 0;
  size_t j = 0;
  for (uint64_t k = 0; k < kItems; k++) {
    if (failed[k]) continue;
    ok_pushes++;
    if (j >= got.size() || got[j] != k) mismatches++;
    j++;
  }
  const uint64_t drops = ring->drops();
  std::printf("[%s] %llu pushed, %llu dropped (ring full), %llu reaped, %llu producer stalls\n", name,
              (unsigned long long)ring->pushed(), (unsigned long long)drops, (unsigned long long)got.size(),
              (unsigned long long)stalls);
  CHECK(bad_entries == 0);
  CHECK(over_capacity == 0);
  CHECK(mismatches == 0);
  CHECK(got.size() == ok_pushes);
  CHECK(ring->pushed() == ok_pushes);
  CHECK(drops == kItems - ok_pushes);
  if (stalling) CHECK(drops == 0);
  ring->destroy();
  CHECK(p.live_pages() == 0);
}

}  // namespace

TEST_CASE("dirty ring stress: a producer that stalls at the soft limit never drops, nothing lost", "[stress][dirtyring]") {
  run(true, "dirtyring-stalling");
}

TEST_CASE("dirty ring stress: an overrunning producer drops only when full, never overwrites", "[stress][dirtyring]") {
  run(false, "dirtyring-overrun");
}
