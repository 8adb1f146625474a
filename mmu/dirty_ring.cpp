// The per-vCPU dirty ring (see dirty_ring.h for the protocol and the pairings R1, R2).
#include "mmu/dirty_ring.h"

namespace mmu {

DirtyRing* DirtyRing::create(Platform& p, uint32_t entries, uint32_t reserve) {
  static_assert(sizeof(DirtyRing) <= kPageSize, "the ring's header must fit one page");
  static_assert(kEntriesPerPage * sizeof(DirtyRingEntry) == kPageSize, "entries tile a page");
  static_assert((kMaxEntries & (kMaxEntries - 1)) == 0 && (kMinEntries & (kMinEntries - 1)) == 0,
                "power-of-two bounds");
  if (entries < kMinEntries || entries > kMaxEntries || (entries & (entries - 1)) != 0) return nullptr;
  if (reserve >= entries) return nullptr;
  const hpa_t self = p.alloc_page();
  if (self == 0) return nullptr;
  auto* ring = new (p.phys_to_virt(self)) DirtyRing(p, self, entries, reserve);
  const uint32_t pages = (entries + kEntriesPerPage - 1) / kEntriesPerPage;
  for (uint32_t i = 0; i < pages; i++) {
    const hpa_t page = p.alloc_page();
    if (page == 0) {
      ring->destroy();
      return nullptr;
    }
    ring->pages_[i] = static_cast<DirtyRingEntry*>(p.phys_to_virt(page));
    ring->npages_++;
  }
  return ring;
}

void DirtyRing::destroy() {
  Platform& p = *platform_;
  const hpa_t self = self_;
  for (unsigned i = 0; i < npages_; i++) p.free_page(p.virt_to_phys(pages_[i]));
  p.free_page(self);  // last: the fields live in it
}

bool DirtyRing::push(uint32_t slot, uint32_t as_id, uint64_t offset) {
  // Relaxed: head is written by this (the only) producer.
  const uint32_t head = head_.load(Order::relaxed);
  // Acquire, pairs with the consumer's release store of tail in reap() (R2): the consumer has
  // finished reading every entry below `tail` before we may overwrite one of them.
  const uint32_t tail = tail_.load(Order::acquire);
  if (head - tail >= capacity_) {
    drops_.store(drops_.load(Order::relaxed) + 1, Order::relaxed);
    return false;
  }
  DirtyRingEntry& e = at(head);
  e.slot = slot;
  e.as_id = as_id;
  e.offset = offset;
  // Release, pairs with the consumer's acquire load of head in reap() (R1): the entry's fields
  // are visible to a consumer that sees the new head.
  head_.store(head + 1, Order::release);
  pushed_.store(pushed_.load(Order::relaxed) + 1, Order::relaxed);
  return true;
}

bool DirtyRing::soft_full() const {
  // Acquire on tail for the same reason as push() (R2); head is the producer's own.
  const uint32_t used = head_.load(Order::relaxed) - tail_.load(Order::acquire);
  return used >= capacity_ - reserve_;
}

uint32_t DirtyRing::reap(DirtyRingEntry* out, uint32_t max) {
  // Relaxed: tail is written by this (the only) consumer.
  const uint32_t tail = tail_.load(Order::relaxed);
  // Acquire, pairs with the producer's release store of head in push() (R1).
  const uint32_t head = head_.load(Order::acquire);
  uint32_t n = head - tail;
  if (n > max) n = max;
  for (uint32_t i = 0; i < n; i++) out[i] = at(tail + i);
  // Release, pairs with the producer's acquire load of tail in push() and soft_full() (R2):
  // the reads above are done before the producer can reuse these entries.
  tail_.store(tail + n, Order::release);
  return n;
}

uint32_t DirtyRing::used() const {
  // A snapshot for reports and checks. Tail first: head only grows, so head - tail read in this
  // order is never more than the capacity (tail read later could pass an older head).
  const uint32_t tail = tail_.load(Order::acquire);
  const uint32_t head = head_.load(Order::acquire);
  return head - tail;
}

}  // namespace mmu
