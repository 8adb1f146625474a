// The two fairness properties of hv's reader-writer locks (mmu/lock.h RwSpinLock, the MMU's
// mmu/percpu_rwlock.h PerCpuRwLock), written once as templates over the lock and run by the
// unit and stress tests of each lock.
//
// Both are judged by counting hand-offs, never by elapsed time: the threads here spin, and on a
// loaded 2-core machine a spinning thread may be off its core for whole scheduler slices, so
// a deadline would measure the scheduler, not the lock. A broken lock must still end the test
// (fail, not hang); each test has a bound in events that only a starved side reaches:
//  - reader_admitted_between_alternating_writers: the writers stop after kStarvedSections
//    sections during which the reader waited (a phase-fair lock admits it after at most one);
//  - reader_chain_does_not_starve_writer: the readers stop chaining after kChainCap of their
//    sections during one lock() of the writer (a lock that lets it in breaks the chain at once).
// Spinning loops yield now and then so that, with more threads than cores, the thread the
// others wait for gets a core soon (this changes timing, never what is counted).
#pragma once

#include <catch2/catch.hpp>
#include <cstdio>
#include <thread>

#include "mmu/atomic.h"
#include "mmu/lock.h"
#include "mmu/percpu_rwlock.h"

namespace hvtest {

// The reader side of each lock: RwSpinLock's readers are anonymous, PerCpuRwLock's pass the
// id of the CPU they run on (each thread here plays one CPU).
template <class Lock>
struct ReaderSide;
template <>
struct ReaderSide<mmu::RwSpinLock> {
  static void lock(mmu::RwSpinLock& l, unsigned) NO_THREAD_SAFETY_ANALYSIS { l.lock_shared(); }
  static bool try_lock(mmu::RwSpinLock& l, unsigned) NO_THREAD_SAFETY_ANALYSIS { return l.try_lock_shared(); }
  static void unlock(mmu::RwSpinLock& l, unsigned) NO_THREAD_SAFETY_ANALYSIS { l.unlock_shared(); }
};
template <>
struct ReaderSide<mmu::PerCpuRwLock> {
  static void lock(mmu::PerCpuRwLock& l, unsigned cpu) NO_THREAD_SAFETY_ANALYSIS { l.lock_shared(cpu); }
  static bool try_lock(mmu::PerCpuRwLock& l, unsigned cpu) NO_THREAD_SAFETY_ANALYSIS { return l.try_lock_shared(cpu); }
  static void unlock(mmu::PerCpuRwLock& l, unsigned cpu) NO_THREAD_SAFETY_ANALYSIS { l.unlock_shared(cpu); }
};

// Spin-wait step: PAUSE, and every 256th time give the core away.
inline void relax(uint64_t& spins) {
  if ((++spins & 255) == 0) std::this_thread::yield();
  else mmu::spin_pause();
}

// The yield pattern of zap_leafs_yield_safe() and teardown_step(), `unlock(); relax; lock();`,
// run by two writers at once, against one reader that keeps coming back. Counted in plain
// memory guarded by the lock: the writer sections that ended while the reader was announced and
// waiting (waiting_readers() != 0 just before the writer's unlock()). Phase fairness admits the
// reader at the first writer unlock() after it announced: at most one such section per wait
// (two allowed for slack). With plain writer preference the two writers keep the reader out
// until they give up after kStarvedSections such sections, and the test fails.
// The writers run until the reader is done (not a fixed number of sections): a reader that is
// off its core for a while then still finds them running, so its rounds really wait.
template <class Lock>
void check_reader_admitted_between_alternating_writers(const char* tag) NO_THREAD_SAFETY_ANALYSIS {
  Lock l;
  uint64_t sections_while_reader_waited = 0;  // guarded by l
  uint64_t writer_sections = 0;               // guarded by l
  mmu::Atomic<int> stop{0};
  mmu::Atomic<int> writers_running{0};
  constexpr uint64_t kStarvedSections = 100000;
  constexpr int kReaderRounds = 200;
  constexpr unsigned kReaderCpu = 2;

  auto writer = [&]() NO_THREAD_SAFETY_ANALYSIS {
    uint64_t mine = 0;  // this writer's sections (writer_sections is the lock's to guard)
    l.lock();
    writers_running.fetch_add(1, mmu::Order::relaxed);
    while (stop.load(mmu::Order::relaxed) == 0 && sections_while_reader_waited < kStarvedSections) {
      writer_sections++;
      mine++;
      for (int k = 0; k < 16; k++) mmu::spin_pause();  // a step of work under the lock
      if (l.waiting_readers() != 0) sections_while_reader_waited++;
      l.unlock();
      // The free window of the yield pattern: one PAUSE (and, now and then, the core for
      // whoever waits for it: with three spinning threads on two cores the reader may be
      // the one without a core).
      if ((mine & 1023) == 0) std::this_thread::yield();
      else mmu::spin_pause();
      l.lock();
    }
    l.unlock();
  };
  uint64_t worst = 0, rounds_that_waited = 0;
  std::thread w0(writer), w1(writer);
  std::thread reader([&]() NO_THREAD_SAFETY_ANALYSIS {
    while (writers_running.load(mmu::Order::relaxed) < 2) std::this_thread::yield();
    for (int i = 0; i < kReaderRounds; i++) {
      // Arrive while a writer holds the lock, so that the round has to wait.
      for (int k = 0; k < 100000 && !l.is_write_locked(); k++) std::this_thread::yield();
      ReaderSide<Lock>::lock(l, kReaderCpu);
      const uint64_t waited_for = sections_while_reader_waited;
      sections_while_reader_waited = 0;
      if (waited_for > worst) worst = waited_for;
      if (waited_for != 0) rounds_that_waited++;
      ReaderSide<Lock>::unlock(l, kReaderCpu);
      for (int k = 0; k < 64; k++) mmu::spin_pause();  // let the writers run
    }
    stop.store(1, mmu::Order::relaxed);
  });
  reader.join();
  w0.join();
  w1.join();
  std::printf("[%s-phase-fair] %d reader rounds (%llu waited), %llu writer sections, "
              "worst %llu writer sections per wait\n",
              tag, kReaderRounds, static_cast<unsigned long long>(rounds_that_waited),
              static_cast<unsigned long long>(writer_sections), static_cast<unsigned long long>(worst));
  CHECK(worst <= 2);
  // The reader must have had to wait at least sometimes, or the bound above shows nothing
  // (the writers hold the lock almost all the time, so nearly every round waits).
  CHECK(rounds_that_waited > 0);
  CHECK_FALSE(l.is_locked());
  CHECK(l.waiting_readers() == 0);
}

// Two readers hand the lock over to each other so that some reader always holds it: each keeps
// holding until its partner holds too, or until the partner *failed* to get in after we got in
// (only a writer that announced or owns the write side makes try_lock_shared() fail). With
// reader preference the partner never fails, the chain never breaks and the writer starves.
// Its bound: the reader sections that end while the writer is inside one lock() call. A lock
// that lets writers in breaks the chain within a few sections; a starving one lets the readers
// run to kChainCap, where they stop (so the writer gets in and the test ends) and it fails.
// (kChainCap is about a second of sections: more than the writer thread can be kept off a core
// between entering lock() and announcing itself while the readers yield now and then.)
template <class Lock>
void check_reader_chain_does_not_starve_writer(const char* tag) NO_THREAD_SAFETY_ANALYSIS {
  Lock l;
  mmu::Atomic<int> stop{0};
  mmu::Atomic<int> holders{0};
  mmu::Atomic<uint64_t> failures[2];
  mmu::Atomic<uint64_t> reader_sections{0};
  mmu::Atomic<int> writer_in_lock{0};
  mmu::Atomic<uint64_t> sections_in_this_lock{0};  // reset by the writer before each lock()
  mmu::Atomic<uint64_t> worst_lock{0};             // the most of them any lock() call saw
  mmu::Atomic<int> writes_done{0};
  uint64_t shared_value = 0;  // guarded by l
  constexpr int kWrites = 200;
  constexpr uint64_t kChainCap = 5000000;

  auto reader = [&](int me) NO_THREAD_SAFETY_ANALYSIS {
    const int partner = 1 - me;
    const unsigned cpu = 10 + static_cast<unsigned>(me);
    uint64_t spins = 0;
    while (!stop.load(mmu::Order::relaxed)) {
      if (!ReaderSide<Lock>::try_lock(l, cpu)) {
        failures[me].fetch_add(1, mmu::Order::relaxed);
        relax(spins);
        continue;
      }
      const uint64_t partner_failures = failures[partner].load(mmu::Order::relaxed);
      holders.fetch_add(1, mmu::Order::relaxed);
      volatile uint64_t v = shared_value;
      (void)v;
      while (!stop.load(mmu::Order::relaxed) && holders.load(mmu::Order::relaxed) < 2 &&
             failures[partner].load(mmu::Order::relaxed) == partner_failures) {
        relax(spins);
      }
      holders.fetch_sub(1, mmu::Order::relaxed);
      ReaderSide<Lock>::unlock(l, cpu);
      reader_sections.fetch_add(1, mmu::Order::relaxed);
      // A starved writer: stop chaining so that it gets in and the test ends (and fails).
      if (writer_in_lock.load(mmu::Order::relaxed) &&
          sections_in_this_lock.fetch_add(1, mmu::Order::relaxed) + 1 >= kChainCap)
        stop.store(1, mmu::Order::relaxed);
    }
  };
  std::thread r0(reader, 0), r1(reader, 1);
  while (reader_sections.load(mmu::Order::relaxed) < 100) std::this_thread::yield();
  std::thread writer([&]() NO_THREAD_SAFETY_ANALYSIS {
    for (int i = 0; i < kWrites; i++) {
      sections_in_this_lock.store(0, mmu::Order::relaxed);
      writer_in_lock.store(1, mmu::Order::relaxed);
      l.lock();
      writer_in_lock.store(0, mmu::Order::relaxed);
      const uint64_t seen = sections_in_this_lock.load(mmu::Order::relaxed);
      if (seen > worst_lock.load(mmu::Order::relaxed)) worst_lock.store(seen, mmu::Order::relaxed);
      shared_value++;
      l.unlock();
      writes_done.fetch_add(1, mmu::Order::relaxed);
    }
  });
  writer.join();
  stop.store(1, mmu::Order::relaxed);
  r0.join();
  r1.join();
  std::printf("[%s-starvation] %d of %d writes among %llu reader sections; at most %llu reader "
              "sections ended during one lock()\n",
              tag, writes_done.load(mmu::Order::relaxed), kWrites,
              static_cast<unsigned long long>(reader_sections.load(mmu::Order::relaxed)),
              static_cast<unsigned long long>(worst_lock.load(mmu::Order::relaxed)));
  CHECK(writes_done.load(mmu::Order::relaxed) == kWrites);
  CHECK(shared_value == static_cast<uint64_t>(kWrites));
  CHECK(worst_lock.load(mmu::Order::relaxed) < kChainCap);
}

}  // namespace hvtest
