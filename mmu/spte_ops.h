// The one place where SPTEs are read and written.
//
// Every store, exchange, compare-and-swap and bit-clear of an entry in an EPT table goes through
// these functions. In hosted builds (the unit tests) a recorder hook may observe each write
// after it took effect, which lets tests check every intermediate state of an update. In the
// freestanding kernel (__STDC_HOSTED__ == 0) the hook does not exist and these are plain atomics.
//
// Memory ordering, software side: a link to a new table is written with release semantics (the
// CAS/exchange/store below), after the table's 512 entries were zeroed or filled. A walker that
// loads the link (spte_read, acquire) and then reads the child sees the filled table: release
// here pairs with the acquire in spte_read.
// Hardware side: on x86 the CAS is a LOCK CMPXCHG, and even a plain store becomes globally
// visible only after every older store (TSO). The CPU's EPT walker reads the child table only
// after it has read the link (the address depends on it), so a walker that uses the new link
// sees the filled table: the locked instruction / store order on our side pairs with the
// dependent loads of the hardware walk. No fence instruction is needed, only the compiler
// ordering that the release semantics provide.
#pragma once

#include "mmu/atomic.h"
#include "mmu/spte.h"

namespace mmu {

#if __STDC_HOSTED__
// Test hook: called after every SPTE write that took effect, on the writing thread, with the
// value before and after. Set only by single-threaded unit tests (no locking of its own).
using SpteRecorder = void (*)(void* ctx, spte_t* sptep, spte_t old_value, spte_t new_value,
                              int level);
struct SpteRecorderSlot {
  SpteRecorder fn = nullptr;
  void* ctx = nullptr;
};
inline SpteRecorderSlot g_spte_recorder;
inline void spte_record(spte_t* p, spte_t o, spte_t n, int level) {
  if (MMU_UNLIKELY(g_spte_recorder.fn != nullptr)) g_spte_recorder.fn(g_spte_recorder.ctx, p, o, n, level);
}
#else
inline void spte_record(spte_t*, spte_t, spte_t, int) {}
#endif

// Acquire: pairs with the release of the writer that linked a child table (see above).
inline spte_t spte_read(const spte_t* p) { return atomic_load(p, Order::acquire); }

// Plain store, for entries nobody else can write concurrently (MMU lock held exclusively, or a
// table not yet linked). Release: publishes what was written into a child before linking it.
inline void spte_store(spte_t* p, spte_t v, int level) {
  spte_t old = 0;
#if __STDC_HOSTED__
  old = atomic_load(p, Order::relaxed);
#endif
  atomic_store(p, v, Order::release);
  spte_record(p, old, v, level);
}

// Atomic replace returning the previous value: used where the CPU may set A/D bits concurrently
// (a LOCKed update by the page walker) and the final value must not be lost.
inline spte_t spte_exchange(spte_t* p, spte_t v, int level) {
  spte_t old = atomic_exchange(p, v, Order::acq_rel);
  spte_record(p, old, v, level);
  return old;
}

// Compare-and-swap: the writer of every change made with the MMU lock held shared. On failure
// `expected` receives the current value (acquire: a newly linked child is fully visible).
inline bool spte_cmpxchg(spte_t* p, spte_t& expected, spte_t desired, int level) {
  const spte_t before = expected;
  if (!atomic_cmpxchg(p, expected, desired, Order::acq_rel)) return false;
  spte_record(p, before, desired, level);
  return true;
}

// Atomically clear `bits`; returns the previous value (aging clears Accessed this way so that a
// racing hardware A/D update or software CAS is never lost). Relaxed: nothing is published.
inline spte_t spte_clear_bits(spte_t* p, spte_t bits, int level) {
  spte_t old = atomic_fetch_and(p, ~bits, Order::relaxed);
  if (old & bits) spte_record(p, old, old & ~bits, level);
  return old;
}

}  // namespace mmu
