// Single-threaded semantics of the MMU lock (mmu/percpu_rwlock.h), and its two fairness
// properties that need more threads to observe: a writer shuts out new readers as soon as it
// owns the write side, and a reader that waits behind writers is admitted at the next writer
// hand-off (phase fairness). Each thread passes its own CPU id, as the MMU does.
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <thread>

#include "mmu/percpu_rwlock.h"
#include "tests/host/host_platform.h"
#include "progress_wait.h"
#include "tests/host/rwlock_fairness.h"

// These tests take the lock in patterns the static analysis rejects (a second shared hold on
// another "CPU", try_lock on a held lock), so their bodies opt out of it.
#define LOCK_TEST(name, tags)                   \
  static void name() NO_THREAD_SAFETY_ANALYSIS; \
  TEST_CASE(#name, tags) { name(); }            \
  static void name()

LOCK_TEST(percpu_rwlock_shared_coexist_exclusive_excludes, "[lock]") {
  mmu::PerCpuRwLock l;
  REQUIRE_FALSE(l.is_locked());

  l.lock_shared(0);
  REQUIRE(l.try_lock_shared(5));
  REQUIRE(l.reader_count() == 2);
  l.assert_held_shared(0);
  l.assert_held_shared(5);
  l.assert_held_shared();
  REQUIRE(l.is_locked());
  REQUIRE_FALSE(l.is_write_locked());
  REQUIRE_FALSE(l.try_lock());  // readers block a writer...
  REQUIRE_FALSE(l.writer_owns());  // ...and a failed try_lock leaves nothing behind
  l.unlock_shared(5);
  REQUIRE_FALSE(l.try_lock());  // one reader is enough
  l.unlock_shared(0);
  REQUIRE(l.reader_count() == 0);

  // Two holds on one CPU id (two host threads sharing an id) are counted, not flagged.
  l.lock_shared(3);
  l.lock_shared(3);
  REQUIRE(l.reader_count() == 2);
  l.unlock_shared(3);
  REQUIRE(l.reader_count() == 1);
  l.unlock_shared(3);

  REQUIRE(l.try_lock());
  REQUIRE(l.is_write_locked());
  l.assert_held();
  l.assert_held_shared(7);  // a writer holds everything a reader holds
  REQUIRE_FALSE(l.try_lock());
  REQUIRE_FALSE(l.try_lock_shared(1));
  REQUIRE(l.waiting_readers() == 0);  // try_lock_shared never announces itself
  REQUIRE(l.reader_count() == 0);     // nor keeps its increment
  l.unlock();
  REQUIRE_FALSE(l.is_locked());
  REQUIRE_FALSE(l.writer_owns());

  {
    mmu::WriteLockGuard g(l);
    REQUIRE(l.is_write_locked());
  }
  {
    mmu::PerCpuReadGuard g(l, mmu::PerCpuRwLock::kSlots - 1);  // the highest slot works too
    REQUIRE(l.reader_count() == 1);
  }
  REQUIRE_FALSE(l.is_locked());
}

// The reader's fast path writes only its own slot: a reader never changes the writer word.
LOCK_TEST(percpu_rwlock_fast_path_leaves_writer_word_alone, "[lock]") {
  mmu::PerCpuRwLock l;
  for (unsigned cpu = 0; cpu < 4; cpu++) l.lock_shared(cpu);
  REQUIRE(l.reader_count() == 4);
  REQUIRE(l.waiting_readers() == 0);
  REQUIRE_FALSE(l.writer_owns());
  for (unsigned cpu = 0; cpu < 4; cpu++) l.unlock_shared(cpu);
  REQUIRE(l.try_lock());  // the writer saw every slot drained
  l.unlock();
}

LOCK_TEST(percpu_rwlock_writer_shuts_out_readers, "[lock][concurrency]") {
  mmu::PerCpuRwLock l;
  mmu::Atomic<int> writer_done{0};
  l.lock_shared(0);
  std::thread writer([&] {
    l.lock();  // owns the write side at once, then waits for our hold on CPU 0 to drain
    writer_done.store(1, mmu::Order::relaxed);
    l.unlock();
  });
  // Once the writer owns the write side, try_lock_shared() on another CPU must fail even
  // though only a reader holds the lock. With reader preference it would succeed.
  // Try until it has, not a fixed number of times: on a loaded host it may get no core for long.
  const bool shut_out = hvtest::wait_for_progress([&]() NO_THREAD_SAFETY_ANALYSIS {
    if (!l.try_lock_shared(1)) return true;
    l.unlock_shared(1);
    std::this_thread::sleep_for(std::chrono::microseconds(50));
    return false;
  });
  CHECK(shut_out);
  CHECK(l.writer_owns());
  CHECK_FALSE(l.is_write_locked());  // still draining us
  CHECK(writer_done.load(mmu::Order::relaxed) == 0);  // it cannot get in while we read
  l.unlock_shared(0);
  writer.join();
  CHECK(writer_done.load(mmu::Order::relaxed) == 1);
  CHECK_FALSE(l.is_locked());
}

// Phase fairness against the yield pattern of zap and teardown (tests/host/rwlock_fairness.h).
TEST_CASE("percpu_rwlock_reader_admitted_between_alternating_writers", "[lock][concurrency]") {
  hvtest::check_reader_admitted_between_alternating_writers<mmu::PerCpuRwLock>("percpu-rwlock");
}

// Asymmetric fences (mmu/platform.h): the read side pays no heavy fence, every writer that
// sets kWriter pays one before it looks at the readers (also a try_lock that then finds a
// reader); a lock without a Platform, or with symmetric fences, never calls it.
LOCK_TEST(percpu_rwlock_asymmetric_fences_writers_pay, "[lock]") {
  REQUIRE(hvtest::HostPlatform::membarrier_available());
  hvtest::HostPlatform p(4, hvtest::HostPlatform::Fences::asymmetric);
  mmu::PerCpuRwLock l(p);
  for (int i = 0; i < 100; i++) {
    l.lock_shared(1);
    REQUIRE(l.reader_count() == 1);
    l.unlock_shared(1);
    REQUIRE(l.try_lock_shared(2));
    l.unlock_shared(2);
  }
  REQUIRE(l.reader_count() == 0);
  REQUIRE(p.heavy_fences() == 0);
  l.lock();
  REQUIRE(p.heavy_fences() == 1);
  REQUIRE_FALSE(l.try_lock());  // held: fails before setting kWriter, no fence
  REQUIRE(p.heavy_fences() == 1);
  l.unlock();
  l.lock_shared(3);
  REQUIRE_FALSE(l.try_lock());  // sets kWriter, fences, finds the reader, backs off
  REQUIRE(p.heavy_fences() == 2);
  l.unlock_shared(3);
  REQUIRE(l.try_lock());
  REQUIRE(p.heavy_fences() == 3);
  l.unlock();
  REQUIRE_FALSE(l.is_locked());

  hvtest::HostPlatform sym(4, hvtest::HostPlatform::Fences::symmetric);
  mmu::PerCpuRwLock ls(sym);
  ls.lock_shared(1);
  ls.unlock_shared(1);
  ls.lock();
  ls.unlock();
  REQUIRE(sym.heavy_fences() == 0);
}
