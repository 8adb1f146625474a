// Spinlocks of the MMU core: SpinLock (exclusive) and RwSpinLock (reader-writer; the MMU lock
// was one until mmu/percpu_rwlock.h replaced it, and it stays as the benchmark's baseline and
// for any reader-writer use where one shared word is fine).
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
// Neither lock is recursive. In particular RwSpinLock makes new readers wait behind a waiting
// writer, so a CPU that takes it shared twice can deadlock against a writer that arrived in
// between: never nest lock_shared() on the same lock.
#pragma once

#include "mmu/atomic.h"
#include "base/thread_safety.h"
#include "mmu/types.h"

namespace mmu {

// Run by every spin-wait of the MMU's locks (null: nothing). A platform that needs its CPUs to
// keep answering something while they spin (the kernel: fence requests, the heavy side of the
// asymmetric fences, mmu/platform.h) sets it once, before any lock is contended. It must be
// cheap when nothing waits. Loaded relaxed: it is set once at boot, before the platform turns
// asymmetric fences on, and the boot's first fence request and its answers order the store
// before any wait that must answer (hv/mmu_platform.cpp, fences_init).
inline void (*spin_wait_hook)() = nullptr;

// Spin-loop hint: PAUSE on x86 (saves power and avoids the memory-order machine clear when
// the awaited store arrives), after the platform's hook. Locks cannot reach
// Platform::cpu_relax(): they have no Platform.
inline void spin_pause() {
  if (void (*hook)() = __atomic_load_n(&spin_wait_hook, __ATOMIC_RELAXED)) hook();
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

// Reader-writer spinlock, phase-fair: neither side can starve the other.
//
// Why phase-fair. The MMU lock has a steady stream of readers (vCPU faults, shared) and rare
// writers (memslot zaps; teardown steps too, until they became readers) that hold it for a
// bounded step and then yield with
// `unlock(); cpu_relax(); lock();`. Plain writer preference starves the readers there: with
// two writers alternating, one of them is always waiting, so a "writer waiting" bit never
// clears; with one writer, the free window is one PAUSE and nothing hands the lock to the
// readers that spin on it. Plain reader preference starves the writers instead. So the lock
// alternates phases: a writer phase (one writer) is followed by a reader phase that admits
// every reader that arrived during it, and a reader phase ends (for new readers) as soon as a
// writer waits. Bounds: a reader waits for at most one writer critical section (the one that
// holds the lock when it arrives, or the one that was waiting when it arrived in a reader
// phase) plus that section's hand-off; a writer waits for at most the current reader phase
// and the writers that beat it. Waiting writers race among themselves (no FIFO order: a FIFO
// would stall every writer behind a preempted one on the oversubscribed host tests).
//
// State word (64 bits, every change is an atomic read-modify-write, so that each release
// below heads a release sequence that later RMWs continue):
//   bit 0        kWriter         a writer holds the lock
//   bit 1        kWriterWaiting  a writer is waiting: new readers must not enter
//   bit 2        kPhase          flipped by a writer's unlock() that admits waiting readers
//   bits 3..31   waiting readers (announced, not yet admitted)
//   bits 32..63  holding readers (including admitted ones that have not noticed yet)
// A reader that finds kWriter or kWriterWaiting set announces itself (waiting + 1) and spins
// until kPhase differs from the value it saw when it announced. The writer's unlock() moves
// every waiting reader into the holders and flips kPhase in one RMW, so the admitted readers
// hold the lock before the next writer can look at it (it needs zero holders). A waiting
// reader cannot miss its flip (ABA on the single bit): it is counted as a holder from the
// first flip after its announcement, so no writer gets in, and no second flip happens, until
// it has noticed and left. Invariant: waiting readers != 0 implies kWriter or kWriterWaiting
// (so some writer's unlock() will admit them).
class CAPABILITY("rwlock") RwSpinLock {
 public:
  constexpr RwSpinLock() = default;
  RwSpinLock(const RwSpinLock&) = delete;
  RwSpinLock& operator=(const RwSpinLock&) = delete;

  // --- Exclusive (write) side ---
  void lock() ACQUIRE() {
    for (;;) {
      uint64_t s = state_.load(Order::relaxed);
      if ((s & (kWriter | kHolderMask)) == 0) {
        // No holder at all (waiting readers may exist: they arrived while we waited, and we
        // admit them at our unlock()). Taking it clears the waiting bit; other waiting writers
        // set it again on their next round, so new readers stay out while any writer waits.
        // Acquire: pairs with the release in unlock() and unlock_shared() of the previous
        // holders (each reader's release RMW is in the release sequence that our CAS reads).
        if (state_.compare_exchange(s, (s | kWriter) & ~kWriterWaiting, Order::acquire)) return;
        continue;
      }
      if ((s & kWriterWaiting) == 0) state_.fetch_or(kWriterWaiting, Order::relaxed);
      spin_pause();
    }
  }

  bool try_lock() TRY_ACQUIRE(true) {
    uint64_t s = state_.load(Order::relaxed);
    if ((s & (kWriter | kHolderMask)) != 0) return false;
    // Acquire: pairs with the release in unlock()/unlock_shared(), as in lock(). The waiting
    // bit stays: whoever set it is still waiting.
    return state_.compare_exchange(s, s | kWriter, Order::acquire);
  }

  void unlock() RELEASE() {
    uint64_t s = state_.load(Order::relaxed);
    for (;;) {
      MMU_ASSERT((s & kWriter) != 0);  // not write-locked
      uint64_t next = s & ~kWriter;
      const uint64_t waiting = (s & kWaiterMask) >> kWaiterShift;
      if (waiting != 0) {
        // Admit every reader that waited for us, before any other writer can take the lock:
        // they become holders and see the phase flip. kWriterWaiting survives, so readers
        // arriving from now on wait for the next writer.
        MMU_ASSERT(((s & kHolderMask) >> kHolderShift) + waiting <= kMaxHolders);
        next = ((next & ~kWaiterMask) + waiting * kHolder) ^ kPhase;
      }
      // Release: pairs with the acquire CAS in lock()/try_lock()/lock_shared() of the next
      // holder, and with the acquire phase load of the readers admitted here.
      if (state_.compare_exchange(s, next, Order::release)) return;
    }
  }

  // --- Shared (read) side ---
  // Fast path (no writer holds or waits): one load and one CAS, as in any rwlock.
  void lock_shared() ACQUIRE_SHARED() {
    uint64_t s = state_.load(Order::relaxed);
    for (;;) {
      if ((s & (kWriter | kWriterWaiting)) == 0) {
        MMU_ASSERT((s >> kHolderShift) < kMaxHolders);  // reader count overflow
        // Acquire: pairs with the release CAS in unlock() of the last writer.
        if (state_.compare_exchange(s, s + kHolder, Order::acquire)) return;
        continue;  // `s` was reloaded by the failed CAS
      }
      MMU_ASSERT(((s & kWaiterMask) >> kWaiterShift) < kMaxWaiters);  // overflow
      // Announce. Relaxed: the announcement orders nothing; our admission does (below).
      if (state_.compare_exchange(s, s + kWaiter, Order::relaxed)) break;
    }
    const uint64_t phase = s & kPhase;  // `s` is the value our announcing CAS replaced
    // Acquire: pairs with the release CAS in unlock() of the writer that admitted us (or a
    // later RMW of its release sequence): its critical section happens before ours.
    while ((state_.load(Order::acquire) & kPhase) == phase) spin_pause();
  }

  // Never waits, so it never announces itself: it fails while a writer holds or waits.
  bool try_lock_shared() TRY_ACQUIRE_SHARED(true) {
    uint64_t s = state_.load(Order::relaxed);
    while ((s & (kWriter | kWriterWaiting)) == 0) {
      MMU_ASSERT((s >> kHolderShift) < kMaxHolders);  // reader count overflow
      // Acquire: pairs with the release in unlock(), as in lock_shared(). A failed CAS
      // (another reader came or went) reloads `s` and retries; only a writer makes us give up.
      if (state_.compare_exchange(s, s + kHolder, Order::acquire)) return true;
    }
    return false;
  }

  void unlock_shared() RELEASE_SHARED() {
    MMU_ASSERT((state_.load(Order::relaxed) >> kHolderShift) != 0);  // not read-locked
    // Release: our reads in the critical section happen before a writer's acquire CAS in
    // lock()/try_lock(), which reads this RMW (or a later one of its release sequence).
    state_.fetch_sub(kHolder, Order::release);
  }

  // --- Assertions ---
  // Held exclusively (by someone; the word records no owner).
  void assert_held() const ASSERT_CAPABILITY(this) { MMU_ASSERT(is_write_locked()); }
  // Held shared *or* exclusively: a function that only reads what the lock protects works
  // under either mode, and a writer holds everything a reader holds.
  void assert_held_shared() const ASSERT_SHARED_CAPABILITY(this) { MMU_ASSERT(is_locked()); }

  bool is_write_locked() const { return (state_.load(Order::relaxed) & kWriter) != 0; }
  bool is_locked() const {
    return (state_.load(Order::relaxed) & (kWriter | kHolderMask)) != 0;
  }
  uint32_t reader_count() const {
    return static_cast<uint32_t>(state_.load(Order::relaxed) >> kHolderShift);
  }
  // Readers that announced themselves and wait for a writer's unlock() (statistics, tests).
  uint32_t waiting_readers() const {
    return static_cast<uint32_t>((state_.load(Order::relaxed) & kWaiterMask) >> kWaiterShift);
  }

 private:
  static constexpr uint64_t kWriter = 1;
  static constexpr uint64_t kWriterWaiting = 2;
  static constexpr uint64_t kPhase = 4;
  static constexpr unsigned kWaiterShift = 3;
  static constexpr uint64_t kWaiter = uint64_t{1} << kWaiterShift;
  static constexpr unsigned kHolderShift = 32;
  static constexpr uint64_t kHolder = uint64_t{1} << kHolderShift;
  static constexpr uint64_t kWaiterMask = kHolder - kWaiter;  // bits 3..31
  static constexpr uint64_t kHolderMask = ~(kHolder - 1);     // bits 32..63
  static constexpr uint64_t kMaxWaiters = kWaiterMask >> kWaiterShift;
  static constexpr uint64_t kMaxHolders = kHolderMask >> kHolderShift;
  Atomic<uint64_t> state_{0};
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

// Any lock with lock()/unlock() exclusive: RwSpinLock, and the MMU lock (mmu/percpu_rwlock.h).
template <typename Lock>
class SCOPED_CAPABILITY WriteLockGuard {
 public:
  explicit WriteLockGuard(Lock& l) ACQUIRE(l) : l_(l) { l_.lock(); }
  ~WriteLockGuard() RELEASE() { l_.unlock(); }
  WriteLockGuard(const WriteLockGuard&) = delete;
  WriteLockGuard& operator=(const WriteLockGuard&) = delete;

 private:
  Lock& l_;
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
