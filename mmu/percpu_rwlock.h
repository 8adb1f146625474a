// PerCpuRwLock: the MMU lock. A reader-writer spinlock whose read side writes only the calling
// CPU's own cache line, so that vCPUs faulting in parallel (the readers) do not bounce a shared
// lock word between their caches; writers (memslot zaps, dirty-log walks, the teardown fence;
// teardown steps are readers too) are rare and pay for
// it by looking at every CPU's line. Phase-fair like RwSpinLock (mmu/lock.h, whose comment says
// why the MMU needs that): neither side can starve the other.
//
// State
//   slot_[cpu].readers  per-CPU reader indicator (its own cache line): readers inside, or on
//                       their way in or out, that run as `cpu`. A counter, not a flag. With
//                       symmetric fences it is changed with atomic RMWs, so that two host
//                       threads sharing a CPU id stay correct (they only share the line). With
//                       asymmetric fences (below) the fast path changes it with a plain load and
//                       store, so only one thread at a time may use a CPU id, as for the epoch's
//                       sections (every MMU caller passes Platform::cpu_id()). Either way a CPU
//                       id must stay the same from lock_shared() to unlock_shared().
//   state_              one word on its own line, written only by writers and by readers that
//                       wait for a writer (never on the fast path):
//     bit 0      kWriter    a writer owns the write side (draining readers, or holding): new
//                           readers back off
//     bit 1      kHeld      the writer has drained every reader and holds the lock (assertions)
//     bit 2      kPhase     flipped by a writer's unlock() that admits waiting readers
//     bits 8..31            waiting readers (announced behind a writer, not admitted yet)
//     bits 32..55           admitted readers that have not yet registered in their slot
//   used_               1 + the highest slot index ever used: writers scan slots [0, used_).
//
// Read side, fast path (no writer): raise the CPU's own slot, fence, then load state_ (a
// read-mostly line that stays in every reader's cache). The fence is where the two modes differ:
//   symmetric   (no Platform, or one without a heavy fence): the raise is a seq_cst fetch_add, a
//               locked instruction that is its own full fence;
//   asymmetric  (a Platform with asymmetric_fences(), mmu/platform.h): the raise is a plain
//               store, followed by a compiler barrier only; every writer pays instead with
//               Platform::asymmetric_fence_heavy() between setting kWriter and scanning the
//               slots. That keeps the fault path free of serializing instructions here. If it shows kWriter, the
// reader takes its increment back, announces itself as waiting (a CAS that succeeds only while
// kWriter is still set), and spins until the phase bit flips: the writer's unlock() turned
// it into an admitted reader, which registers in its slot and then leaves the admitted count.
// Unlock: one release fetch_sub on the own slot.
//
// Write side: wait until no writer owns the lock and no admitted reader is still on its way to
// its slot, set kWriter (seq_cst CAS), then wait until every slot below used_ reads 0 (each
// reader in there either leaves or backs off), set kHeld. Unlock: clear both bits, and move all
// waiting readers to "admitted" with a phase flip, in one RMW.
//
// Memory ordering (each pairing also written where it is used):
//   (D) Dekker, store->load on both sides: the reader's slot increment must be ordered before
//       its load of state_, and the writer's kWriter store before its loads of the slots, or
//       both could miss each other (each seeing the other's old value) and the writer would
//       write while the reader reads. Symmetric: all four are seq_cst: in the single total
//       order either the reader's load of state_ comes after the writer's CAS (it sees kWriter
//       and backs off) or the writer's slot load comes after the reader's increment (it waits
//       for it). Asymmetric: the writer's heavy fence comes after its CAS and before its slot
//       loads, and makes every reader CPU fence once in between; the argument in
//       mmu/platform.h gives the same "one sees the other" (models/asym_fence.pml).
//       used_ is raised (seq_cst) before the slot increment and loaded (seq_cst) after the
//       writer's CAS, so a writer that the reader does not see also sees its slot index.
//       On x86 this costs the reader exactly its locked fetch_add (a seq_cst load is a MOV),
//       or nothing at all with asymmetric fences.
//   (A) writer -> reader: the release CAS of unlock() pairs with the reader's seq_cst (hence
//       acquire) load of state_ on the fast path, and with the acquire phase load of a waiting
//       reader; every later change of state_ is an RMW, so it continues that release sequence.
//   (B) reader -> writer: the release fetch_sub of unlock_shared() pairs with the writer's
//       acquire (seq_cst) load of that slot that reads 0.
//   (C) admitted reader -> next writer: its relaxed slot increment is ordered before its
//       release decrement of the admitted count, which pairs with the next writer's acquire
//       CAS (it needs the admitted count to be 0): that writer's scan sees the reader.
//
// Fairness (phase-fair, the property of RwSpinLock):
//   * A writer that owns kWriter waits only for the readers inside at that moment (new ones back
//     off); before that, for the writer in front of it (writers race, no FIFO, as in RwSpinLock)
//     and for admitted readers to register (a few instructions each). Readers cannot starve it.
//   * A reader that announced itself waits for exactly one writer critical section: the unlock()
//     of the writer that owned kWriter when it announced admits it, and the next writer cannot
//     set kWriter before it has registered (admitted count 0). Waiting readers != 0 implies
//     kWriter (announcing needs it, and unlock() clears both in one RMW), so some unlock() will
//     admit them. The phase bit cannot flip twice under a waiting reader (no ABA): a second
//     flip needs a writer, which needs the admitted count, including ours, to drop to 0.
//     Before it announces, a reader can lose only to a writer unlock() that falls between its
//     load of state_ and its announcing CAS (it then retries the fast path once more).
//
// Not recursive, like RwSpinLock: a CPU that takes it shared twice can deadlock against a writer
// that set kWriter in between (it drains the first hold while the second waits for it).
#pragma once

#include "base/thread_safety.h"
#include "mmu/atomic.h"
#include "mmu/lock.h"
#include "mmu/platform.h"
#include "mmu/types.h"

namespace mmu {

class CAPABILITY("rwlock") PerCpuRwLock {
 public:
  static constexpr unsigned kSlots = Platform::kMaxCpus;

  // Symmetric fences (a lock on its own, the unit tests).
  constexpr PerCpuRwLock() = default;
  // Asymmetric fences if `platform` has them (the MMU's lock). The Platform outlives the lock.
  explicit PerCpuRwLock(Platform& platform)
      : platform_(&platform), asymmetric_(platform.asymmetric_fences()) {}
  PerCpuRwLock(const PerCpuRwLock&) = delete;
  PerCpuRwLock& operator=(const PerCpuRwLock&) = delete;

  // --- Exclusive (write) side ---
  void lock() ACQUIRE() {
    own_writer_side();
    drain_readers();
    // Relaxed: kHeld is for assertions only; the ordering came with the drain (B).
    state_.fetch_or(kHeld, Order::relaxed);
  }

  // Fails (without waiting) if a writer owns the lock, admitted readers are on their way in,
  // or a reader holds it.
  bool try_lock() TRY_ACQUIRE(true) {
    uint64_t s = state_.load(Order::relaxed);
    if ((s & (kWriter | kAdmittedMask)) != 0) return false;
    // seq_cst: (D) and (A)/(C) as in own_writer_side().
    if (!state_.compare_exchange(s, s | kWriter, Order::seq_cst)) return false;
    if (readers_present()) {
      // Readers that saw our kWriter meanwhile may have announced themselves: admit them.
      release_writer_side();
      return false;
    }
    state_.fetch_or(kHeld, Order::relaxed);
    return true;
  }

  void unlock() RELEASE() {
    MMU_ASSERT((state_.load(Order::relaxed) & kHeld) != 0);  // not write-locked
    release_writer_side();
  }

  // --- Shared (read) side; `cpu` is the caller's CPU id (Platform::cpu_id()) ---
  void lock_shared(unsigned cpu) ACQUIRE_SHARED() {
    Slot& me = slot(cpu);
    for (;;) {
      // (D): our increment, then the load of state_. Acquire half of the load: (A).
      raise_fenced(me);
      uint64_t s = state_.load(Order::seq_cst);
      if (MMU_LIKELY((s & kWriter) == 0)) return;
      // A writer owns the lock or is draining us: take the increment back (relaxed: we read
      // nothing it protects) and wait behind it.
      me.readers.fetch_sub(1, Order::relaxed);
      if (wait_as_announced(me, s)) return;
      // The writer left before we could announce ourselves: try again.
    }
  }

  // Never waits: fails while a writer owns the lock (holding it or draining readers).
  bool try_lock_shared(unsigned cpu) TRY_ACQUIRE_SHARED(true) {
    Slot& me = slot(cpu);
    // (D) and (A), as in lock_shared().
    raise_fenced(me);
    if ((state_.load(Order::seq_cst) & kWriter) == 0) return true;
    me.readers.fetch_sub(1, Order::relaxed);
    return false;
  }

  void unlock_shared(unsigned cpu) RELEASE_SHARED() {
    MMU_ASSERT(cpu < kSlots);
    Slot& me = slots_[cpu];
    MMU_ASSERT(me.readers.load(Order::relaxed) != 0);  // not read-locked on this CPU
    // Release (B): our reads in the critical section happen before the acquire load of a
    // writer that sees this slot drained. Asymmetric: only this CPU writes its slot, so a
    // plain release store (a MOV) does what the RMW does.
    if (MMU_LIKELY(asymmetric_)) {
      me.readers.store(me.readers.load(Order::relaxed) - 1, Order::release);
    } else {
      me.readers.fetch_sub(1, Order::release);
    }
  }

  // --- Assertions ---
  // Held exclusively (by someone: the lock records no owner).
  void assert_held() const ASSERT_CAPABILITY(this) { MMU_ASSERT(is_write_locked()); }
  // Held shared by `cpu` (the caller's CPU), or exclusively by a writer (a writer holds
  // everything a reader holds).
  void assert_held_shared(unsigned cpu) const ASSERT_SHARED_CAPABILITY(this) {
    MMU_ASSERT(cpu < kSlots);
    MMU_ASSERT(slots_[cpu].readers.load(Order::relaxed) != 0 || is_write_locked());
  }
  // Held in either mode by someone: weaker, for callers that do not know their CPU (the root
  // walks). Prefer assert_held_shared(cpu).
  void assert_held_shared() const ASSERT_SHARED_CAPABILITY(this) { MMU_ASSERT(is_locked()); }

  bool is_write_locked() const { return (state_.load(Order::relaxed) & kHeld) != 0; }
  bool is_locked() const { return is_write_locked() || reader_count() != 0; }
  // Readers holding (or passing through their fast path) on all CPUs (tests, statistics).
  uint32_t reader_count() const {
    uint64_t n = 0;
    const unsigned used = used_.load(Order::relaxed);
    for (unsigned i = 0; i < used; i++) n += slots_[i].readers.load(Order::relaxed);
    return static_cast<uint32_t>(n);
  }
  // Readers that announced themselves and wait for a writer's unlock() (statistics, tests).
  uint32_t waiting_readers() const {
    return static_cast<uint32_t>((state_.load(Order::relaxed) & kWaiterMask) >> kWaiterShift);
  }
  bool writer_owns() const { return (state_.load(Order::relaxed) & kWriter) != 0; }

 private:
  struct alignas(64) Slot {
    Atomic<uint64_t> readers{0};
  };
  static_assert(sizeof(Slot) == 64 && alignof(Slot) == 64, "one reader indicator per line");

  static constexpr uint64_t kWriter = 1;
  static constexpr uint64_t kHeld = 2;
  static constexpr uint64_t kPhase = 4;
  static constexpr unsigned kWaiterShift = 8;
  static constexpr uint64_t kWaiter = uint64_t{1} << kWaiterShift;
  static constexpr uint64_t kWaiterMask = (uint64_t{1} << 32) - kWaiter;  // bits 8..31
  static constexpr unsigned kAdmittedShift = 32;
  static constexpr uint64_t kAdmitted = uint64_t{1} << kAdmittedShift;
  static constexpr uint64_t kAdmittedMask = (uint64_t{1} << 56) - kAdmitted;  // bits 32..55
  static constexpr uint64_t kMaxWaiters = kWaiterMask >> kWaiterShift;

  // The reader's store half of (D): raise our slot, then fence before the caller loads state_.
  void raise_fenced(Slot& me) {
    if (MMU_LIKELY(asymmetric_)) {
      // A plain store: only this CPU writes its slot (see State). The writer's heavy fence
      // stands in for our fence; Platform::asymmetric_fence_light() with the mode known.
      me.readers.store(me.readers.load(Order::relaxed) + 1, Order::relaxed);
      compiler_barrier();
    } else {
      me.readers.fetch_add(1, Order::seq_cst);
    }
  }
  // The writer's side of (D), after the CAS that set kWriter and before any slot load.
  void writer_fence() {
    if (asymmetric_) platform_->asymmetric_fence_heavy();
  }

  Slot& slot(unsigned cpu) {
    MMU_ASSERT(cpu < kSlots);
    // Rare (the first time this slot is used): raise used_ before the slot's first increment,
    // seq_cst (D), so a writer that reads used_ after its CAS scans this slot.
    if (MMU_UNLIKELY(cpu >= used_.load(Order::relaxed))) {
      uint32_t u = used_.load(Order::relaxed);
      while (u <= cpu && !used_.compare_exchange(u, cpu + 1, Order::seq_cst)) {
      }
    }
    return slots_[cpu];
  }

  // Slow path of lock_shared(): we saw `s` with kWriter set and have backed off. Announce
  // ourselves and wait for the writer's unlock() to admit us; true when we hold the lock,
  // false if the writer left before we could announce (the caller retries the fast path).
  bool wait_as_announced(Slot& me, uint64_t s) NO_THREAD_SAFETY_ANALYSIS {
    for (;;) {
      if ((s & kWriter) == 0) return false;
      MMU_ASSERT(((s & kWaiterMask) >> kWaiterShift) < kMaxWaiters);  // overflow
      // Relaxed: the announcement orders nothing; the admission does (below). Succeeds only
      // while kWriter is set, so that writer's unlock() will see us (the invariant above).
      if (state_.compare_exchange(s, s + kWaiter, Order::relaxed)) break;
      // `s` was reloaded by the failed CAS.
    }
    const uint64_t phase = s & kPhase;  // the value our announcing CAS replaced
    // Acquire (A): pairs with the release CAS in release_writer_side() that admitted us (or a
    // later RMW of its release sequence): its critical section happens before ours.
    while ((state_.load(Order::acquire) & kPhase) == phase) spin_pause();
    // Register, then leave the admitted count. No writer can own the lock in between: it needs
    // the admitted count at 0. Release (C): our increment is visible to the next writer's scan.
    me.readers.fetch_add(1, Order::relaxed);
    state_.fetch_sub(kAdmitted, Order::release);
    return true;
  }

  void own_writer_side() {
    for (;;) {
      uint64_t s = state_.load(Order::relaxed);
      if ((s & (kWriter | kAdmittedMask)) == 0) {
        // seq_cst: the store half is our announcement to readers (D); the acquire half pairs
        // with the release of the previous writer's unlock (A) and with admitted readers'
        // release decrements (C).
        if (state_.compare_exchange(s, s | kWriter, Order::seq_cst)) return;
        continue;
      }
      spin_pause();
    }
  }

  bool readers_present() {
    writer_fence();  // (D)
    // seq_cst loads after our seq_cst CAS (D): used_ first, then the slots.
    const unsigned used = used_.load(Order::seq_cst);
    for (unsigned i = 0; i < used; i++) {
      if (slots_[i].readers.load(Order::seq_cst) != 0) return true;
    }
    return false;
  }

  void drain_readers() {
    writer_fence();  // (D)
    const unsigned used = used_.load(Order::seq_cst);  // (D), after the CAS that set kWriter
    for (unsigned i = 0; i < used; i++) {
      // seq_cst (D) and acquire (B): pairs with the release fetch_sub of unlock_shared().
      while (slots_[i].readers.load(Order::seq_cst) != 0) spin_pause();
    }
  }

  void release_writer_side() {
    uint64_t s = state_.load(Order::relaxed);
    for (;;) {
      MMU_ASSERT((s & kWriter) != 0);
      uint64_t next = s & ~(kWriter | kHeld);
      const uint64_t waiting = (s & kWaiterMask) >> kWaiterShift;
      if (waiting != 0) {
        // Admit every reader that waited for us, before any writer can own the lock again (it
        // needs the admitted count at 0): they see the phase flip, register and go in.
        MMU_ASSERT(((s & kAdmittedMask) >> kAdmittedShift) == 0);
        next = ((next & ~kWaiterMask) + waiting * kAdmitted) ^ kPhase;
      }
      // Release (A): pairs with the readers' acquire loads of state_ (fast path and admitted).
      if (state_.compare_exchange(s, next, Order::release)) return;
    }
  }

  // The writer-side word on its own line: read on every reader's fast path, written only by
  // writers and waiting readers.
  alignas(64) Atomic<uint64_t> state_{0};
  Atomic<uint32_t> used_{0};
  // Read-only after construction, on the same read-mostly line.
  Platform* const platform_ = nullptr;
  const bool asymmetric_ = false;
  alignas(64) Slot slots_[kSlots];
};

static_assert(alignof(PerCpuRwLock) == 64, "the lock's lines are its own");
static_assert(sizeof(PerCpuRwLock) == 64 * (1 + PerCpuRwLock::kSlots), "state line + one per CPU");

// Scoped holders, so that an early return cannot leak a lock.
class SCOPED_CAPABILITY PerCpuReadGuard {
 public:
  PerCpuReadGuard(PerCpuRwLock& l, unsigned cpu) ACQUIRE_SHARED(l) : l_(l), cpu_(cpu) {
    l_.lock_shared(cpu_);
  }
  ~PerCpuReadGuard() RELEASE() { l_.unlock_shared(cpu_); }
  PerCpuReadGuard(const PerCpuReadGuard&) = delete;
  PerCpuReadGuard& operator=(const PerCpuReadGuard&) = delete;

 private:
  PerCpuRwLock& l_;
  const unsigned cpu_;
};

// The write side uses WriteLockGuard (mmu/lock.h).

}  // namespace mmu
