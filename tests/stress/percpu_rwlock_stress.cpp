// Real-thread stress of the MMU lock (mmu/percpu_rwlock.h). The data it protects is plain
// memory, so ThreadSanitizer reports any access the lock fails to order (the release/acquire
// pairings (A), (B), (C) of its comment); the invariants below catch a lock that lets a writer
// in beside a reader or another writer (the Dekker pairing (D), which TSan cannot judge: only
// the real threads on real cores can break it, and then `overlap` counts it).
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "mmu/percpu_rwlock.h"
#include "tests/stress/stress_seed.h"
#include "tests/host/host_platform.h"
#include "tests/host/rwlock_fairness.h"
#include "tests/host/torn_data.h"

using hvtest::consistent;
using hvtest::write_one;
using hvtest::TornData;

// Readers on their own CPU ids, two threads sharing one id (symmetric fences only: with
// asymmetric ones a CPU id is one thread's), and writers (blocking and try_), mixed at random.
// Besides the torn-data check, every holder registers in `inside` (readers +1, writers
// +kWriterMark) and checks what it finds: a writer must be alone, a reader must see no writer.
namespace {
void readers_and_writers_never_overlap(mmu::PerCpuRwLock& l, bool share_an_id) {
  const uint64_t seed = hvtest::stress_seed("percpu-rwlock");
  constexpr int kThreads = 5;
  constexpr uint64_t kIters = 60000;
  constexpr uint64_t kWriterMark = 1ull << 32;
  TornData data;
  mmu::Atomic<uint64_t> inside{0};
  mmu::Atomic<uint64_t> torn{0}, overlap{0}, reads{0}, writes{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; t++) {
    // Threads 3 and 4 may share CPU id 21 (as two host threads may): counted, still correct.
    const unsigned cpu = t < 4 || !share_an_id ? static_cast<unsigned>(t) * 7 : 21;
    ts.emplace_back([&, t, cpu]() NO_THREAD_SAFETY_ANALYSIS {
      hvtest::SplitMix rng(seed * 31 + static_cast<uint64_t>(t));
      auto as_writer = [&] {
        if (inside.fetch_add(kWriterMark, mmu::Order::relaxed) != 0) overlap.fetch_add(1, mmu::Order::relaxed);
        if (!consistent(data)) torn.fetch_add(1, mmu::Order::relaxed);
        write_one(data);
        writes.fetch_add(1, mmu::Order::relaxed);
        inside.fetch_sub(kWriterMark, mmu::Order::relaxed);
      };
      auto as_reader = [&] {
        if (inside.fetch_add(1, mmu::Order::relaxed) >= kWriterMark) overlap.fetch_add(1, mmu::Order::relaxed);
        if (!consistent(data)) torn.fetch_add(1, mmu::Order::relaxed);
        reads.fetch_add(1, mmu::Order::relaxed);
        inside.fetch_sub(1, mmu::Order::relaxed);
      };
      for (uint64_t i = 0; i < kIters; i++) {
        const uint64_t r = rng.below(32);
        if (r == 0) {
          mmu::WriteLockGuard g(l);
          as_writer();
        } else if (r == 1) {
          if (!l.try_lock()) continue;
          as_writer();
          l.unlock();
        } else if (r == 2) {
          if (!l.try_lock_shared(cpu)) continue;
          as_reader();
          l.unlock_shared(cpu);
        } else {
          mmu::PerCpuReadGuard g(l, cpu);
          as_reader();
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  std::printf("[percpu-rwlock] %llu reads, %llu writes\n",
              static_cast<unsigned long long>(reads.load(mmu::Order::relaxed)),
              static_cast<unsigned long long>(writes.load(mmu::Order::relaxed)));
  CHECK(torn.load(mmu::Order::relaxed) == 0);
  CHECK(overlap.load(mmu::Order::relaxed) == 0);
  CHECK(consistent(data));
  CHECK(data.a == writes.load(mmu::Order::relaxed));
  CHECK(writes.load(mmu::Order::relaxed) > 0);
  CHECK(reads.load(mmu::Order::relaxed) > 0);
  CHECK_FALSE(l.is_locked());
  CHECK(l.waiting_readers() == 0);
}
}  // namespace

TEST_CASE("PerCpuRwLock: readers and writers never overlap", "[lock][concurrency]") {
  mmu::PerCpuRwLock l;
  readers_and_writers_never_overlap(l, true);
}

// The same with asymmetric fences (mmu/platform.h): readers fence nothing, every writer makes
// the CPUs fence through membarrier(2). Each writer must have paid one heavy fence (a try_lock
// that fails before setting kWriter pays none).
TEST_CASE("PerCpuRwLock: readers and writers never overlap, asymmetric fences", "[lock][concurrency]") {
  REQUIRE(hvtest::HostPlatform::membarrier_available());
  hvtest::HostPlatform p(4, hvtest::HostPlatform::Fences::asymmetric);
  REQUIRE(p.asymmetric_fences());
  mmu::PerCpuRwLock l(p);
  readers_and_writers_never_overlap(l, false);
  CHECK(p.heavy_fences() > 0);
}

// The writer's kWriter breaks a chain of overlapping readers at once (tests/host/rwlock_fairness.h).
TEST_CASE("PerCpuRwLock: a chain of overlapping readers does not starve a writer",
          "[lock][concurrency]") {
  hvtest::check_reader_chain_does_not_starve_writer<mmu::PerCpuRwLock>("percpu-rwlock");
}

// Blocking readers (lock_shared, the slow path with announcement and admission) against a
// writer that holds the lock almost all the time: every reader round must complete (phase
// fairness: admitted at the next writer unlock), and the writer keeps making progress too.
// Both counts are checked against a deadline that only a starved side would miss.
TEST_CASE("PerCpuRwLock: blocking readers and a busy writer both progress", "[lock][concurrency]") {
  mmu::PerCpuRwLock l;
  mmu::Atomic<int> stop{0};
  mmu::Atomic<uint64_t> writer_sections{0};
  mmu::Atomic<int> readers_done{0};
  mmu::Atomic<uint64_t> went_back{0};
  uint64_t value = 0;  // guarded by l
  constexpr int kReaders = 3;
  constexpr int kRounds = 300;
  std::thread writer([&]() NO_THREAD_SAFETY_ANALYSIS {
    l.lock();
    while (!stop.load(mmu::Order::relaxed)) {
      value++;
      for (int k = 0; k < 32; k++) mmu::spin_pause();
      writer_sections.fetch_add(1, mmu::Order::relaxed);
      l.unlock();
      mmu::spin_pause();
      l.lock();
    }
    l.unlock();
  });
  std::vector<std::thread> readers;
  for (int r = 0; r < kReaders; r++) {
    readers.emplace_back([&, r]() NO_THREAD_SAFETY_ANALYSIS {
      uint64_t last = 0;
      for (int i = 0; i < kRounds; i++) {
        mmu::PerCpuReadGuard g(l, static_cast<unsigned>(r) + 1);
        if (value < last) went_back.fetch_add(1, mmu::Order::relaxed);  // never, under the lock
        last = value;
      }
      readers_done.fetch_add(1, mmu::Order::relaxed);
    });
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);  // only a starved side gets near it
  // Wait for both sides: the readers may finish their rounds before the writer thread has even
  // been scheduled (it then still has to complete a section by the deadline).
  while ((readers_done.load(mmu::Order::relaxed) < kReaders || writer_sections.load(mmu::Order::relaxed) == 0) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const int done = readers_done.load(mmu::Order::relaxed);
  const uint64_t sections = writer_sections.load(mmu::Order::relaxed);
  stop.store(1, mmu::Order::relaxed);
  for (auto& t : readers) t.join();
  writer.join();
  std::printf("[percpu-rwlock-progress] %d of %d readers done in time, %llu writer sections\n", done,
              kReaders, static_cast<unsigned long long>(sections));
  CHECK(done == kReaders);
  CHECK(sections > 0);
  CHECK(went_back.load(mmu::Order::relaxed) == 0);
  CHECK_FALSE(l.is_locked());
}
