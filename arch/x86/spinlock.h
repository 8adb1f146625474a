// A test-and-test-and-set spinlock for the kernel, with an owner record.
//
// The owner (CPU index + 1, 0 when free) lets the panic and exception paths tell "this CPU
// already holds the lock" (a fault inside the logger) from "another CPU holds it", so they
// can break a lock that would otherwise deadlock the last words of a dying kernel.
#pragma once

#include <stdint.h>

#include "arch/x86/cpu.h"

namespace x86 {

class SpinLock {
 public:
  void lock(unsigned cpu) {
    const uint32_t me = cpu + 1;
    for (;;) {
      uint32_t expected = 0;
      // Acquire: pairs with the release store in unlock(); everything the previous owner
      // wrote inside the critical section is visible once we own the lock.
      if (__atomic_compare_exchange_n(&owner_, &expected, me, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return;
      while (__atomic_load_n(&owner_, __ATOMIC_RELAXED) != 0) cpu_relax();
    }
  }
  // Bounded attempt: gives up after `spins` rounds (the panic path must not hang forever).
  bool try_lock_for(unsigned cpu, uint64_t spins) {
    const uint32_t me = cpu + 1;
    for (uint64_t i = 0; i < spins; i++) {
      uint32_t expected = 0;
      if (__atomic_compare_exchange_n(&owner_, &expected, me, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return true;
      cpu_relax();
    }
    return false;
  }
  void unlock() { __atomic_store_n(&owner_, 0u, __ATOMIC_RELEASE); }
  bool held_by(unsigned cpu) const { return __atomic_load_n(&owner_, __ATOMIC_RELAXED) == cpu + 1; }
  // Forcibly take the lock (panic path only).
  void steal(unsigned cpu) { __atomic_store_n(&owner_, cpu + 1, __ATOMIC_RELEASE); }

 private:
  uint32_t owner_ = 0;
};

}  // namespace x86
