// Thin atomics over the compiler's __atomic builtins.
//
// The freestanding kernel has no <atomic>, and the host build must see the very same code, so
// the MMU uses these wrappers everywhere. ThreadSanitizer understands the builtins, which is
// what makes the host stress tests meaningful. Every use names its memory order explicitly;
// the pairing of each acquire/release is written down where it is used.
#pragma once

#include "mmu/types.h"

namespace mmu {

enum class Order : int {
  relaxed = __ATOMIC_RELAXED,
  acquire = __ATOMIC_ACQUIRE,
  release = __ATOMIC_RELEASE,
  acq_rel = __ATOMIC_ACQ_REL,
  seq_cst = __ATOMIC_SEQ_CST,
};

template <typename T>
class Atomic {
 public:
  constexpr Atomic() : v_{} {}
  constexpr explicit Atomic(T v) : v_(v) {}
  Atomic(const Atomic&) = delete;
  Atomic& operator=(const Atomic&) = delete;

  T load(Order o) const { return __atomic_load_n(&v_, static_cast<int>(o)); }
  void store(T v, Order o) { __atomic_store_n(&v_, v, static_cast<int>(o)); }
  T exchange(T v, Order o) { return __atomic_exchange_n(&v_, v, static_cast<int>(o)); }
  // On failure `expected` is updated with the current value (acquire on failure when the
  // success order has acquire semantics, relaxed otherwise).
  bool compare_exchange(T& expected, T desired, Order success) {
    return __atomic_compare_exchange_n(&v_, &expected, desired, false, static_cast<int>(success),
                                       failure_order(success));
  }
  T fetch_add(T d, Order o) { return __atomic_fetch_add(&v_, d, static_cast<int>(o)); }
  T fetch_sub(T d, Order o) { return __atomic_fetch_sub(&v_, d, static_cast<int>(o)); }
  T fetch_or(T d, Order o) { return __atomic_fetch_or(&v_, d, static_cast<int>(o)); }
  T fetch_and(T d, Order o) { return __atomic_fetch_and(&v_, d, static_cast<int>(o)); }

  // Raw address, for code that must hand the word to hardware (an SPTE in a table page).
  T* raw() { return &v_; }

 private:
  static constexpr int failure_order(Order o) {
    return (o == Order::acq_rel || o == Order::acquire) ? __ATOMIC_ACQUIRE
           : o == Order::seq_cst                         ? __ATOMIC_SEQ_CST
                                                         : __ATOMIC_RELAXED;
  }
  T v_;
};

// Free-standing operations on a plain word that lives in memory shared with hardware
// (an SPTE in an EPT page). Same semantics as the members of Atomic<T>.
template <typename T>
inline T atomic_load(const T* p, Order o) { return __atomic_load_n(p, static_cast<int>(o)); }
template <typename T>
inline void atomic_store(T* p, T v, Order o) { __atomic_store_n(p, v, static_cast<int>(o)); }
template <typename T>
inline T atomic_exchange(T* p, T v, Order o) { return __atomic_exchange_n(p, v, static_cast<int>(o)); }
template <typename T>
inline bool atomic_cmpxchg(T* p, T& expected, T desired, Order o) {
  return __atomic_compare_exchange_n(p, &expected, desired, false, static_cast<int>(o),
                                     (o == Order::acq_rel || o == Order::acquire) ? __ATOMIC_ACQUIRE
                                     : o == Order::seq_cst ? __ATOMIC_SEQ_CST
                                                           : __ATOMIC_RELAXED);
}
template <typename T>
inline T atomic_fetch_and(T* p, T v, Order o) { return __atomic_fetch_and(p, v, static_cast<int>(o)); }

inline void atomic_thread_fence(Order o) { __atomic_thread_fence(static_cast<int>(o)); }
// Keeps the compiler from moving memory accesses across it; the CPU may still reorder (the
// light side of the asymmetric fences, mmu/platform.h).
inline void compiler_barrier() { __atomic_signal_fence(__ATOMIC_SEQ_CST); }

}  // namespace mmu
