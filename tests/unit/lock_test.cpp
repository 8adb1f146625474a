// Single-threaded semantics of mmu/lock.h, plus the two fairness properties of RwSpinLock that
// need more threads to observe: a waiting writer shuts out new readers, and a reader that waits
// behind writers is admitted at the next writer hand-off (phase fairness).
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <thread>

#include "mmu/lock.h"
#include "progress_wait.h"
#include "tests/host/rwlock_fairness.h"

// These tests deliberately take locks in patterns the static analysis rejects (a second shared
// acquisition, try_lock on a held lock), so their bodies opt out of it.
#define LOCK_TEST(name, tags)                              \
  static void name() NO_THREAD_SAFETY_ANALYSIS;            \
  TEST_CASE(#name, tags) { name(); }                       \
  static void name()

LOCK_TEST(spinlock_lock_try_lock_unlock, "[lock]") {
  mmu::SpinLock l;
  REQUIRE_FALSE(l.is_locked());
  l.lock();
  REQUIRE(l.is_locked());
  l.assert_held();
  REQUIRE_FALSE(l.try_lock());
  l.unlock();
  REQUIRE_FALSE(l.is_locked());
  REQUIRE(l.try_lock());
  REQUIRE(l.is_locked());
  l.unlock();
  {
    mmu::SpinLockGuard g(l);
    REQUIRE(l.is_locked());
  }
  REQUIRE_FALSE(l.is_locked());
}

LOCK_TEST(rwspinlock_shared_coexist_exclusive_excludes, "[lock]") {
  mmu::RwSpinLock l;
  REQUIRE_FALSE(l.is_locked());

  l.lock_shared();
  REQUIRE(l.try_lock_shared());
  REQUIRE(l.reader_count() == 2);
  l.assert_held_shared();
  REQUIRE(l.is_locked());
  REQUIRE_FALSE(l.is_write_locked());
  REQUIRE_FALSE(l.try_lock());  // readers block a writer
  l.unlock_shared();
  REQUIRE_FALSE(l.try_lock());  // one reader is enough
  l.unlock_shared();
  REQUIRE(l.reader_count() == 0);

  REQUIRE(l.try_lock());
  REQUIRE(l.is_write_locked());
  l.assert_held();
  l.assert_held_shared();  // a writer holds everything a reader holds
  REQUIRE_FALSE(l.try_lock());
  REQUIRE_FALSE(l.try_lock_shared());
  l.unlock();
  REQUIRE_FALSE(l.is_locked());

  {
    mmu::WriteLockGuard g(l);
    REQUIRE(l.is_write_locked());
  }
  {
    mmu::ReadLockGuard g(l);
    REQUIRE(l.reader_count() == 1);
  }
  REQUIRE_FALSE(l.is_locked());
}

LOCK_TEST(rwspinlock_waiting_writer_shuts_out_readers, "[lock][concurrency]") {
  mmu::RwSpinLock l;
  mmu::Atomic<int> writer_done{0};
  l.lock_shared();
  std::thread writer([&] {
    l.lock();  // spins: we hold it shared; it announces itself as waiting
    writer_done.store(1, mmu::Order::relaxed);
    l.unlock();
  });
  // Wait until the writer has announced itself: from then on try_lock_shared() must fail
  // even though only readers hold the lock. With reader preference it would succeed.
  // Try until it has, not a fixed number of times: on a loaded host it may get no core for long.
  const bool shut_out = hvtest::wait_for_progress([&]() NO_THREAD_SAFETY_ANALYSIS {
    if (!l.try_lock_shared()) return true;
    l.unlock_shared();
    std::this_thread::sleep_for(std::chrono::microseconds(50));
    return false;
  });
  CHECK(shut_out);
  CHECK(writer_done.load(mmu::Order::relaxed) == 0);  // it cannot get in while we read
  l.unlock_shared();
  writer.join();
  CHECK(writer_done.load(mmu::Order::relaxed) == 1);
  CHECK_FALSE(l.is_locked());
}

LOCK_TEST(rwspinlock_phase_bits_single_threaded, "[lock]") {
  mmu::RwSpinLock l;
  l.lock();
  REQUIRE(l.waiting_readers() == 0);
  REQUIRE_FALSE(l.try_lock_shared());  // try_lock_shared never announces itself
  REQUIRE(l.waiting_readers() == 0);
  l.unlock();
  REQUIRE_FALSE(l.is_locked());
  REQUIRE(l.try_lock_shared());
  REQUIRE(l.reader_count() == 1);
  l.unlock_shared();
  REQUIRE(l.reader_count() == 0);
}

// Phase fairness against the yield pattern of zap and teardown (tests/host/rwlock_fairness.h).
TEST_CASE("rwspinlock_reader_admitted_between_alternating_writers", "[lock][concurrency]") {
  hvtest::check_reader_admitted_between_alternating_writers<mmu::RwSpinLock>("rwspinlock");
}
