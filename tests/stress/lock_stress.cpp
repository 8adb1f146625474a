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

namespace {

// Guarded by the lock under test; a writer keeps a == b and rewrites `words` to a pattern
// derived from a, so a torn read (writer active during a read) is visible.
struct Protected {
  uint64_t a = 0;
  uint64_t b = 0;
  uint64_t words[8] = {0, 1, 2, 3, 4, 5, 6, 7};  // consistent for a == 0
};

bool consistent(const Protected& p) {
  if (p.a != p.b) return false;
  for (uint64_t i = 0; i < 8; i++)
    if (p.words[i] != p.a * 8 + i) return false;
  return true;
}

void write_one(Protected& p) {
  p.a++;
  for (uint64_t i = 0; i < 8; i++) p.words[i] = p.a * 8 + i;
  p.b++;
}

}  // namespace

TEST_CASE("SpinLock: mutual exclusion under contention", "[lock][concurrency]") {
  const uint64_t seed = hvtest::stress_seed("spinlock");
  constexpr int kThreads = 4;
  constexpr uint64_t kIters = 100000;
  mmu::SpinLock l;
  Protected data;
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
  Protected data;
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

// Two readers hand the lock over to each other so that its reader count never drops to zero:
// each keeps holding until its partner holds too, or until the partner *failed* to get in
// after we got in (only a waiting or active writer can make it fail). With reader preference
// the partner never fails, the chain never breaks and the writer starves (the test fails after
// its deadline); with writer preference the writer's announcement breaks the chain at once.
TEST_CASE("RwSpinLock: a chain of overlapping readers does not starve a writer",
          "[lock][concurrency]") {
  mmu::RwSpinLock l;
  mmu::Atomic<int> stop{0};
  mmu::Atomic<int> holders{0};
  mmu::Atomic<uint64_t> failures[2];
  mmu::Atomic<uint64_t> reader_sections{0};
  mmu::Atomic<int> writes_done{0};
  uint64_t shared_value = 0;  // guarded by l
  constexpr int kWrites = 200;

  auto reader = [&](int me) {
    const int partner = 1 - me;
    while (!stop.load(mmu::Order::relaxed)) {
      if (!l.try_lock_shared()) {
        failures[me].fetch_add(1, mmu::Order::relaxed);
        mmu::spin_pause();
        continue;
      }
      const uint64_t partner_failures = failures[partner].load(mmu::Order::relaxed);
      holders.fetch_add(1, mmu::Order::relaxed);
      volatile uint64_t v = shared_value;
      (void)v;
      while (!stop.load(mmu::Order::relaxed) && holders.load(mmu::Order::relaxed) < 2 &&
             failures[partner].load(mmu::Order::relaxed) == partner_failures) {
        mmu::spin_pause();
      }
      holders.fetch_sub(1, mmu::Order::relaxed);
      l.unlock_shared();
      reader_sections.fetch_add(1, mmu::Order::relaxed);
    }
  };
  std::thread r0(reader, 0), r1(reader, 1);
  while (reader_sections.load(mmu::Order::relaxed) < 100) std::this_thread::yield();
  std::thread writer([&] {
    for (int i = 0; i < kWrites; i++) {
      l.lock();
      shared_value++;
      l.unlock();
      writes_done.fetch_add(1, mmu::Order::relaxed);
    }
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (writes_done.load(mmu::Order::relaxed) < kWrites &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const int done_in_time = writes_done.load(mmu::Order::relaxed);
  stop.store(1, mmu::Order::relaxed);  // also unblocks a starved writer, so the test ends
  r0.join();
  r1.join();
  writer.join();
  std::printf("[rwspinlock-starvation] %d of %d writes in time, among %llu reader sections\n",
              done_in_time, kWrites,
              static_cast<unsigned long long>(reader_sections.load(mmu::Order::relaxed)));
  CHECK(done_in_time == kWrites);
  CHECK(shared_value == static_cast<uint64_t>(kWrites));
}
