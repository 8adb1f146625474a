// Spinlocks of the MMU core: SpinLock (exclusive) and RwSpinLock (reader-writer, the MMU lock).
//
// Both are plain words manipulated with mmu/atomic.h, so they work unchanged in the freestanding
// kernel (no scheduler to sleep on) and in the host tests (ThreadSanitizer understands the
// __atomic builtins, so it sees every acquire/release pairing below).
//
// Both carry clang capability annotations: -Wthread-safety checks at compile time that data
// marked GUARDED_BY(lock) is touched only with the lock held, and functions marked
// REQUIRES(lock) / REQUIRES_SHARED(lock) are called in the right mode. The assert_held*()
// helpers tell the analysis "held here" where it cannot see it (a lock taken by a caller
// through a pointer it does not know about), and they really check the lock word at run time.
// The run-time check can only see *that* the lock is held in the right mode, not *by whom*:
// the lock word does not record an owner, to keep lock/unlock one atomic each.
//
// Neither lock is recursive. In particular RwSpinLock prefers writers, so a CPU that takes
// it shared twice can deadlock against a writer that arrived in between: never nest
// lock_shared() on the same lock.
#pragma once

#include "mmu/atomic.h"
#include "mmu/thread_safety.h"
#include "mmu/types.h"

// Annotations that mmu/thread_safety.h does not (yet) spell.
#ifndef TRY_ACQUIRE_SHARED
#define TRY_ACQUIRE_SHARED(...) MMU_TSA(try_acquire_shared_capability(__VA_ARGS__))
#endif
#ifndef RETURN_CAPABILITY
#define RETURN_CAPABILITY(x) MMU_TSA(lock_returned(x))
#endif

namespace mmu {

// Spin-loop hint: PAUSE on x86 (saves power and avoids the memory-order machine clear when
// the awaited store arrives). Locks cannot reach Platform::cpu_relax(): they have no Platform.
inline void spin_pause() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Test-and-test-and-set spinlock. Not fair: under contention any waiter may win. Chosen over
// a ticket lock because the host tests oversubscribe their 2 cores with more threads than
// cores, and a ticket lock then stalls everyone behind a preempted waiter. Use it for short
// critical sections with low contention (per-CPU lists, memslot update serialization).
class CAPABILITY("mutex") SpinLock {
 public:
  constexpr SpinLock() = default;
  SpinLock(const SpinLock&) = delete;
  SpinLock& operator=(const SpinLock&) = delete;

  void lock() ACQUIRE() {
    for (;;) {
      // Acquire pairs with the release store in unlock(): everything the previous holder
      // wrote inside its critical section is visible to us.
      if (!word_.exchange(1, Order::acquire)) return;
      // Wait with plain loads so that waiters share the line instead of bouncing it.
      while (word_.load(Order::relaxed) != 0) spin_pause();
    }
  }

  bool try_lock() TRY_ACQUIRE(true) {
    // Acquire: pairs with the release store in unlock(), as in lock().
    return word_.load(Order::relaxed) == 0 && word_.exchange(1, Order::acquire) == 0;
  }

  void unlock() RELEASE() {
    MMU_ASSERT(word_.load(Order::relaxed) != 0);  // unlock of a free lock
    // Release: pairs with the acquire exchange in lock()/try_lock() of the next holder.
    word_.store(0, Order::release);
  }

  // Run-time check (held by someone) plus a hint to the static analysis (held by us).
  void assert_held() const ASSERT_CAPABILITY(this) { MMU_ASSERT(is_locked()); }
  bool is_locked() const { return word_.load(Order::relaxed) != 0; }

 private:
  Atomic<uint32_t> word_{0};
};

// Reader-writer spinlock with writer preference.
//
// State word: bit 0 = a writer holds the lock, bit 1 = a writer is waiting, bits 2.. = number
// of readers holding it. A waiting writer sets bit 1; new readers do not enter while bit 1 or
// bit 0 is set, so a steady stream of readers (vCPU faults under the shared MMU lock) cannot
// starve a writer (a memslot change or a fast zap). The converse, a steady stream of writers
// starving readers, cannot happen in the MMU: writers are rare and each drops the lock in
// between. Waiting writers race for the lock among themselves (no FIFO order).
class CAPABILITY("rwlock") RwSpinLock {
 public:
  constexpr RwSpinLock() = default;
  RwSpinLock(const RwSpinLock&) = delete;
  RwSpinLock& operator=(const RwSpinLock&) = delete;

  // --- Exclusive (write) side ---
  void lock() ACQUIRE() {
    for (;;) {
      uint32_t s = state_.load(Order::relaxed);
      if ((s & ~kWriterWaiting) == 0) {
        // No holder at all. Taking it clears the waiting bit; other waiting writers set it
        // again on their next round, so readers stay out while any writer waits.
        // Acquire: pairs with the release in unlock() and unlock_shared() of the previous
        // holders (each reader's release RMW is in the release sequence that our CAS reads).
        if (state_.compare_exchange(s, kWriter, Order::acquire)) return;
        continue;
      }
      if ((s & kWriterWaiting) == 0) state_.fetch_or(kWriterWaiting, Order::relaxed);
      spin_pause();
    }
  }

  bool try_lock() TRY_ACQUIRE(true) {
    uint32_t s = state_.load(Order::relaxed);
    if ((s & ~kWriterWaiting) != 0) return false;
    // Acquire: pairs with the release in unlock()/unlock_shared(), as in lock().
    return state_.compare_exchange(s, kWriter, Order::acquire);
  }

  void unlock() RELEASE() {
    MMU_ASSERT((state_.load(Order::relaxed) & kWriter) != 0);  // not write-locked
    // Release: pairs with the acquire CAS in lock()/lock_shared() of the next holder.
    // fetch_sub, not store(0): another writer's waiting bit must survive.
    state_.fetch_sub(kWriter, Order::release);
  }

  // --- Shared (read) side ---
  void lock_shared() ACQUIRE_SHARED() {
    for (;;) {
      uint32_t s = state_.load(Order::relaxed);
      if ((s & (kWriter | kWriterWaiting)) == 0) {
        // Acquire: pairs with the release fetch_sub in unlock() of the last writer.
        if (state_.compare_exchange(s, s + kReader, Order::acquire)) return;
        continue;
      }
      spin_pause();
    }
  }

  bool try_lock_shared() TRY_ACQUIRE_SHARED(true) {
    uint32_t s = state_.load(Order::relaxed);
    while ((s & (kWriter | kWriterWaiting)) == 0) {
      // Acquire: pairs with the release in unlock(), as in lock_shared(). A failed CAS
      // (another reader came or went) reloads `s` and retries; only a writer makes us give up.
      if (state_.compare_exchange(s, s + kReader, Order::acquire)) return true;
    }
    return false;
  }

  void unlock_shared() RELEASE_SHARED() {
    MMU_ASSERT((state_.load(Order::relaxed) >> kReaderShift) != 0);  // not read-locked
    // Release: our reads in the critical section happen before a writer's acquire CAS in
    // lock(), which reads this RMW (or a later one of its release sequence).
    state_.fetch_sub(kReader, Order::release);
  }

  // --- Assertions ---
  // Held exclusively (by someone; the word records no owner).
  void assert_held() const ASSERT_CAPABILITY(this) { MMU_ASSERT(is_write_locked()); }
  // Held shared *or* exclusively: a function that only reads what the lock protects works
  // under either mode, and a writer holds everything a reader holds.
  void assert_held_shared() const ASSERT_SHARED_CAPABILITY(this) { MMU_ASSERT(is_locked()); }

  bool is_write_locked() const { return (state_.load(Order::relaxed) & kWriter) != 0; }
  bool is_locked() const {
    return (state_.load(Order::relaxed) & ~kWriterWaiting) != 0;
  }
  uint32_t reader_count() const { return state_.load(Order::relaxed) >> kReaderShift; }

 private:
  static constexpr uint32_t kWriter = 1;
  static constexpr uint32_t kWriterWaiting = 2;
  static constexpr unsigned kReaderShift = 2;
  static constexpr uint32_t kReader = uint32_t{1} << kReaderShift;
  Atomic<uint32_t> state_{0};
};

// Scoped holders, so that an early return cannot leak a lock.
class SCOPED_CAPABILITY SpinLockGuard {
 public:
  explicit SpinLockGuard(SpinLock& l) ACQUIRE(l) : l_(l) { l_.lock(); }
  ~SpinLockGuard() RELEASE() { l_.unlock(); }
  SpinLockGuard(const SpinLockGuard&) = delete;
  SpinLockGuard& operator=(const SpinLockGuard&) = delete;

 private:
  SpinLock& l_;
};

class SCOPED_CAPABILITY WriteLockGuard {
 public:
  explicit WriteLockGuard(RwSpinLock& l) ACQUIRE(l) : l_(l) { l_.lock(); }
  ~WriteLockGuard() RELEASE() { l_.unlock(); }
  WriteLockGuard(const WriteLockGuard&) = delete;
  WriteLockGuard& operator=(const WriteLockGuard&) = delete;

 private:
  RwSpinLock& l_;
};

class SCOPED_CAPABILITY ReadLockGuard {
 public:
  explicit ReadLockGuard(RwSpinLock& l) ACQUIRE_SHARED(l) : l_(l) { l_.lock_shared(); }
  ~ReadLockGuard() RELEASE() { l_.unlock_shared(); }
  ReadLockGuard(const ReadLockGuard&) = delete;
  ReadLockGuard& operator=(const ReadLockGuard&) = delete;

 private:
  RwSpinLock& l_;
};

}  // namespace mmu
