// DeadlineCache: lets every VM entry skip polling devices whose interrupts come from time
// alone (the chipset's PIT and RTC, hv/devices/chipset.h) when nothing can be due yet.
//
// Polling them is the costliest step of the entry path that runs on every exit (locks, TSC
// scaling, two devices; about 40% of a CPUID exit's cost in Bochs), yet between two of their
// interrupts their state changes only when the guest touches their ports. So the vCPU that
// polls publishes the answer -- "nothing is due before host TSC `poll_at`, and the next
// interrupt is due at `deadline`" -- and until `poll_at` every entry of every vCPU of the VM
// takes the pair without polling. A port access that can move the deadline calls changed()
// after it changed the device, which makes the next entry poll.
//
// Contract:
//   lookup(now)   any CPU, lock-free, never waits: the published pair if now < poll_at and no
//                 change came since it was published; otherwise false (poll, then publish).
//   begin()       before polling: the generation the pair about to be computed belongs to.
//   publish(g..)  after polling, with what the devices said after begin(): stored only if no
//                 changed() came since begin() (else it may describe the old state: dropped).
//   changed()     after a device change that can move the deadline: forgets the pair; a
//                 lookup() that starts after changed() returned answers false until a publish
//                 that began after it.
// The pair is kept consistent with a sequence counter (odd while a writer rewrites it; a
// reader that sees it odd or changed retries by polling). Writers serialize on a spinlock;
// readers write nothing.
#pragma once

#include <stdint.h>

#include "mmu/atomic.h"
#include "mmu/lock.h"

namespace hv {

class DeadlineCache {
 public:
  bool lookup(uint64_t now, uint64_t* deadline) const {
    // Acquire: pairs with the release store that ended the last rewrite, so the two fields
    // read below are at least that writer's.
    const uint64_t s = seq_.load(mmu::Order::acquire);
    if (s & 1) return false;
    const uint64_t at = poll_at_.load(mmu::Order::relaxed);
    const uint64_t d = deadline_.load(mmu::Order::relaxed);
    // Acquire fence: the field loads above come before the re-check of the counter; if a
    // writer started meanwhile, the counter moved and we do not use what we read.
    mmu::atomic_thread_fence(mmu::Order::acquire);
    if (seq_.load(mmu::Order::relaxed) != s || now >= at) return false;
    *deadline = d;
    return true;
  }

  uint64_t begin() const {
    // Acquire: pairs with the release in changed(), so the device change it announced is seen
    // by the poll that follows.
    return gen_.load(mmu::Order::acquire);
  }

  void publish(uint64_t gen, uint64_t poll_at, uint64_t deadline) {
    mmu::SpinLockGuard g(lock_);
    // A change since begin(): what the caller polled may predate it.
    if (gen_.load(mmu::Order::relaxed) != gen) return;
    rewrite(poll_at, deadline);
  }

  void changed() {
    mmu::SpinLockGuard g(lock_);
    // Release: a poll that begins by reading this generation sees the device change that
    // preceded this call.
    gen_.store(gen_.load(mmu::Order::relaxed) + 1, mmu::Order::release);
    rewrite(0, ~0ull);
  }

 private:
  void rewrite(uint64_t poll_at, uint64_t deadline) REQUIRES(lock_) {
    const uint64_t s = seq_.load(mmu::Order::relaxed);
    seq_.store(s + 1, mmu::Order::relaxed);
    // Release fence: a reader that sees either new field also sees the odd counter above, so
    // its re-check fails.
    mmu::atomic_thread_fence(mmu::Order::release);
    poll_at_.store(poll_at, mmu::Order::relaxed);
    deadline_.store(deadline, mmu::Order::relaxed);
    // Release: pairs with lookup()'s acquire load of the counter.
    seq_.store(s + 2, mmu::Order::release);
  }

  mmu::SpinLock lock_;
  mmu::Atomic<uint64_t> seq_{0};
  mmu::Atomic<uint64_t> gen_{0};
  mmu::Atomic<uint64_t> poll_at_{0};  // 0: nothing published, poll
  mmu::Atomic<uint64_t> deadline_{~0ull};
};

}  // namespace hv
