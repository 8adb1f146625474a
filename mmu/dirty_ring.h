// A per-vCPU dirty ring (the idea of KVM's dirty ring, an option beside the per-slot bitmap of
// dirty_log.h): a fixed-size ring of (slot, page offset) entries that the vCPU pushes when a page
// becomes dirty (the write-protection fault, a PML drain) and that one consumer reaps.
//
// Single producer (the vCPU, on its own CPU: the fault path and its exit's PML drain), single
// consumer (whoever reaps, serialized by the caller: hv holds the VM's slot lock). Lock-free:
// two free-running 32-bit counters, `head` (entries pushed, written by the producer only) and
// `tail` (entries reaped, written by the consumer only); used = head - tail (mod 2^32), and an
// entry lives at index (counter % capacity). The capacity is a power of two, so the counters
// may wrap.
//
// Memory ordering (each pair written at both ends in dirty_ring.cpp):
//   (R1) producer: write the entry, then head.store(release)  ->  consumer: head.load(acquire),
//        then read the entries below it. The consumer sees every field of what it reaps.
//   (R2) consumer: read the entries, then tail.store(release)  ->  producer: tail.load(acquire),
//        then overwrite the entries below it. The producer never overwrites an entry the
//        consumer is still reading.
//
// Full and soft-full: push() fails (and counts a drop) only when all `capacity` entries are
// unreaped, so an entry is never overwritten. soft_full() says used >= capacity - reserve: the
// vCPU should stop at its next safe point until the consumer reaps (KVM's soft limit), and the
// reserve absorbs what it still pushes on the way there (one exit's PML drain: up to 512).
// A drop loses nothing of the dirty state: the slot's bitmap has every page too.
#pragma once

#include "mmu/atomic.h"
#include "mmu/platform.h"
#include "mmu/types.h"

namespace mmu {

struct DirtyRingEntry {
  uint32_t slot;    // the memslot id
  uint32_t as_id;   // its address space
  uint64_t offset;  // page index inside the slot (gfn - base_gfn)
};
static_assert(sizeof(DirtyRingEntry) == 16, "16-byte entries: 256 per page");

class DirtyRing {
 public:
  static constexpr uint32_t kEntriesPerPage = kPageSize / sizeof(DirtyRingEntry);  // 256
  static constexpr uint32_t kMaxPages = 64;
  static constexpr uint32_t kMinEntries = 16;
  static constexpr uint32_t kMaxEntries = kEntriesPerPage * kMaxPages;  // 16384

  // A ring of `entries` (a power of two in [kMinEntries, kMaxEntries]) whose soft limit leaves
  // `reserve` entries (< entries) free. nullptr: bad size or out of memory (nothing kept).
  static DirtyRing* create(Platform& p, uint32_t entries, uint32_t reserve);
  // Free it. No producer or consumer may use it any more.
  void destroy();

  uint32_t capacity() const { return capacity_; }
  uint32_t reserve() const { return reserve_; }

  // --- producer (one thread at a time) ---
  // Append (slot, offset). False when the ring is full (counted in drops(); nothing overwritten).
  bool push(uint32_t slot, uint32_t as_id, uint64_t offset);
  // used >= capacity - reserve: stop producing at the next safe point until the consumer reaps.
  bool soft_full() const;

  // --- consumer (one thread at a time) ---
  // Move up to `max` of the oldest entries to `out`, in push order; returns how many.
  uint32_t reap(DirtyRingEntry* out, uint32_t max);

  // --- either side (a snapshot) ---
  uint32_t used() const;
  uint64_t pushed() const { return pushed_.load(Order::relaxed); }
  uint64_t drops() const { return drops_.load(Order::relaxed); }

 private:
  DirtyRing(Platform& p, hpa_t self, uint32_t capacity, uint32_t reserve)
      : platform_(&p), self_(self), capacity_(capacity), reserve_(reserve) {}
  DirtyRingEntry& at(uint32_t counter) {
    const uint32_t i = counter & (capacity_ - 1);
    return pages_[i / kEntriesPerPage][i % kEntriesPerPage];
  }

  Platform* platform_;
  hpa_t self_;
  uint32_t capacity_;
  uint32_t reserve_;
  unsigned npages_ = 0;
  // On separate cache lines: the producer writes head, the consumer tail.
  alignas(64) Atomic<uint32_t> head_{0};
  alignas(64) Atomic<uint32_t> tail_{0};
  // Statistics, written by the producer only (relaxed: they order nothing).
  alignas(64) Atomic<uint64_t> pushed_{0};
  Atomic<uint64_t> drops_{0};
  DirtyRingEntry* pages_[kMaxPages] = {};
};

}  // namespace mmu
