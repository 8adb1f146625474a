// Real-thread stress of mmu/lock.h. The data the locks protect is plain (non-atomic) memory, so
// ThreadSanitizer reports any access the lock fails to order, and the invariants checked below
// catch a lock that lets two writers, or a reader and a writer, in at once.
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "mmu/lock.h"
#include "tests/stress/stress_seed.h"
#include "tests/host/rwlock_fairness.h"
#include "tests/host/torn_data.h"

using hvtest::consistent;
using hvtest::write_one;
using hvtest::TornData;

TEST_CASE("SpinLock: mutual exclusion under contention", "[lock][concurrency]") {
  const uint64_t seed = hvtest::stress_seed("spinlock");
  constexpr int kThreads = 4;
  constexpr uint64_t kIters = 100000;
  mmu::SpinLock l;
  TornData data;
  mmu::Atomic<uint64_t> bad{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; t++) {
    ts.emplace_back([&, t] {
      hvtest::SplitMix rng(seed + t);
      for (uint64_t i = 0; i < kIters; i++) {
        if (rng.below(4) == 0) {
          if (!l.try_lock()) continue;
        } else {
          l.lock();
        }
        if (!consistent(data)) bad.fetch_add(1, mmu::Order::relaxed);
        write_one(data);
        l.unlock();
      }
    });
  }
  for (auto& t : ts) t.join();
  std::printf("[spinlock] %llu critical sections\n", static_cast<unsigned long long>(data.a));
  CHECK(bad.load(mmu::Order::relaxed) == 0);
  CHECK(consistent(data));
  CHECK(data.a >= kIters * kThreads * 3 / 4 * 9 / 10);  // most lock() calls succeeded
  CHECK_FALSE(l.is_locked());
}

TEST_CASE("RwSpinLock: readers and writers never overlap", "[lock][concurrency]") {
  const uint64_t seed = hvtest::stress_seed("rwspinlock");
  constexpr int kThreads = 4;
  constexpr uint64_t kIters = 100000;
  mmu::RwSpinLock l;
  TornData data;
  mmu::Atomic<uint64_t> bad{0}, reads{0}, writes{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; t++) {
    ts.emplace_back([&, t] {
      hvtest::SplitMix rng(seed * 31 + t);
      for (uint64_t i = 0; i < kIters; i++) {
        const uint64_t r = rng.below(16);
        if (r == 0) {
          mmu::WriteLockGuard g(l);
          if (!consistent(data)) bad.fetch_add(1, mmu::Order::relaxed);
          write_one(data);
          writes.fetch_add(1, mmu::Order::relaxed);
        } else if (r == 1) {
          if (!l.try_lock()) continue;
          write_one(data);
          writes.fetch_add(1, mmu::Order::relaxed);
          l.unlock();
        } else if (r == 2) {
          if (!l.try_lock_shared()) continue;
          if (!consistent(data)) bad.fetch_add(1, mmu::Order::relaxed);
          reads.fetch_add(1, mmu::Order::relaxed);
          l.unlock_shared();
        } else {
          mmu::ReadLockGuard g(l);
          if (!consistent(data)) bad.fetch_add(1, mmu::Order::relaxed);
          reads.fetch_add(1, mmu::Order::relaxed);
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  std::printf("[rwspinlock] %llu reads, %llu writes\n",
              static_cast<unsigned long long>(reads.load(mmu::Order::relaxed)),
              static_cast<unsigned long long>(writes.load(mmu::Order::relaxed)));
  CHECK(bad.load(mmu::Order::relaxed) == 0);
  CHECK(consistent(data));
  CHECK(data.a == writes.load(mmu::Order::relaxed));
  CHECK_FALSE(l.is_locked());
}

// Writer preference (tests/host/rwlock_fairness.h): a chain of overlapping readers cannot keep a
// writer out.
TEST_CASE("RwSpinLock: a chain of overlapping readers does not starve a writer",
          "[lock][concurrency]") {
  hvtest::check_reader_chain_does_not_starve_writer<mmu::RwSpinLock>("rwspinlock");
}
