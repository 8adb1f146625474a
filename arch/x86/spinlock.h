// A test-and-test-and-set spinlock for the kernel, with an owner record, and its scoped guard.
//
// The owner (CPU index + 1, 0 when free) lets the panic and exception paths tell "this CPU
// already holds the lock" (a fault inside the logger) from "another CPU holds it", so they
// can break a lock that would otherwise deadlock the last words of a dying kernel.
//
// SpinLock is a clang capability (base/thread_safety.h): data declared GUARDED_BY(lock) may be
// touched only with it held, functions declared REQUIRES(lock) only be called so, and
// -Wthread-safety (an error in every build) checks it. Prefer SpinLockGuard to lock()/unlock()
// pairs: an early return cannot leak the lock. assert_held() tells the analysis "held here"
// where it cannot see the lock being taken, and checks at run time that this CPU owns it.
//
// Not recursive: a CPU that takes a lock it holds spins forever (lock_or_break() is the one
// exception, for the panic path). Interrupt handlers must not take a lock that the code they
// interrupt may hold, unless that code keeps interrupts off while it holds it (the logger).
#pragma once

#include <stdint.h>

#include "arch/x86/cpu.h"
#include "arch/x86/percpu.h"
#include "base/thread_safety.h"

namespace x86 {

// Run by every CPU that spins for a SpinLock, between attempts (null: nothing). The kernel sets
// it once, before other CPUs could spin, to answer what other CPUs may wait for meanwhile (hv:
// fence requests, hv/cpu_work.h). It must be cheap when nothing waits, and safe anywhere.
// Loaded relaxed: set once, and the kernel orders the store before any wait that must run it
// (hv: the boot's first fence request and its answers, before asymmetric fences go on).
inline void (*g_spin_wait_hook)() = nullptr;
inline void spin_wait() {
  if (void (*hook)() = __atomic_load_n(&g_spin_wait_hook, __ATOMIC_RELAXED)) hook();
  cpu_relax();
}

class CAPABILITY("spinlock") SpinLock {
 public:
  constexpr SpinLock() = default;
  SpinLock(const SpinLock&) = delete;
  SpinLock& operator=(const SpinLock&) = delete;

  // Spins until the lock is ours.
  void lock() ACQUIRE() { lock_as(cpu_index() + 1, spin_wait); }
  // The same, for callers that have their CPU index at hand.
  void lock(unsigned cpu) ACQUIRE() { lock_as(cpu + 1, spin_wait); }
  // The same, running `wait` between attempts instead of PAUSE: a CPU that must keep answering
  // cross-CPU requests while it waits (a TLB flush that the holder waits for) passes the
  // function that answers them.
  using WaitFn = void (*)();
  void lock_waiting(WaitFn wait) ACQUIRE() { lock_as(cpu_index() + 1, wait); }

  // Bounded attempt: gives up after `spins` rounds (the panic path must not hang forever).
  bool try_lock_for(unsigned cpu, uint64_t spins) TRY_ACQUIRE(true) {
    const uint32_t me = cpu + 1;
    for (uint64_t i = 0; i < spins; i++) {
      uint32_t expected = 0;
      // Acquire: pairs with the release store in unlock(), as in lock().
      if (__atomic_compare_exchange_n(&owner_, &expected, me, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return true;
      cpu_relax();
    }
    return false;
  }

  // The panic path's lock: owned on return, however it got there - already this CPU's (a fault
  // inside the critical section), taken within `spins` rounds, or broken (stolen from another
  // CPU that may be dead or spinning with interrupts off). The analysis cannot follow the
  // "already ours" case, hence no checking inside; callers see an ordinary ACQUIRE.
  void lock_or_break(uint64_t spins) ACQUIRE() NO_THREAD_SAFETY_ANALYSIS {
    const unsigned cpu = cpu_index();
    if (held_by(cpu) || try_lock_for(cpu, spins)) return;
    // Acquire: pairs with the release store in unlock(), should the owner have let go since the
    // last attempt. An owner that is dead or stuck never releases: what it left half done is
    // neither ordered nor consistent, which the panic path accepts to get its last lines out.
    __atomic_exchange_n(&owner_, cpu + 1, __ATOMIC_ACQUIRE);
  }

  void unlock() RELEASE() {
    // Release: pairs with the acquire CAS in lock()/try_lock_for() of the next owner.
    __atomic_store_n(&owner_, 0u, __ATOMIC_RELEASE);
  }

  bool held_by(unsigned cpu) const { return __atomic_load_n(&owner_, __ATOMIC_RELAXED) == cpu + 1; }
  bool held_by_this_cpu() const { return held_by(cpu_index()); }
  // Run-time check that this CPU owns the lock, and the analysis's "held from here on". A
  // broken contract is a kernel bug: UD2, which the exception handler reports with the RIP.
  void assert_held() const ASSERT_CAPABILITY(this) {
    if (!held_by_this_cpu()) __builtin_trap();
  }

 private:
  void lock_as(uint32_t me, WaitFn wait) ACQUIRE() {
    for (;;) {
      uint32_t expected = 0;
      // Acquire: pairs with the release store in unlock(); everything the previous owner
      // wrote inside the critical section is visible once we own the lock.
      if (__atomic_compare_exchange_n(&owner_, &expected, me, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return;
      // Wait with plain loads so that waiters share the line instead of bouncing it.
      while (__atomic_load_n(&owner_, __ATOMIC_RELAXED) != 0) wait();
    }
  }

  uint32_t owner_ = 0;
};

// Holds a SpinLock for its scope, so that no return path can leak it.
class SCOPED_CAPABILITY SpinLockGuard {
 public:
  explicit SpinLockGuard(SpinLock& l) ACQUIRE(l) : l_(l) { l_.lock(); }
  // Waiting with `wait` between attempts (SpinLock::lock_waiting).
  SpinLockGuard(SpinLock& l, SpinLock::WaitFn wait) ACQUIRE(l) : l_(l) { l_.lock_waiting(wait); }
  ~SpinLockGuard() RELEASE() { l_.unlock(); }
  SpinLockGuard(const SpinLockGuard&) = delete;
  SpinLockGuard& operator=(const SpinLockGuard&) = delete;

 private:
  SpinLock& l_;
};

}  // namespace x86
