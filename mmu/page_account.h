// PageAccount: the pages one Mmu holds for its EPT, counted where they are allocated and where
// they are finally freed, with an optional limit (MmuConfig::max_table_pages).
//
// What counts: every root table and its Root object page, every paging-structure page, and the
// pages waiting in the vCPUs' page caches (they are taken for tables, and a limit that ignored
// them would let a vCPU stock pages beyond it). Memslot sets and the epoch's tracking pages are
// not table pages and are not counted.
//
// Why the MMU counts for itself rather than a per-VM Platform wrapper: table pages that leave
// the tree are freed by the machine-wide Epoch, long after the Mmu let go of them, through the
// Epoch's own Platform. A wrapper never sees those frees, so its count only grew. Here every
// path that frees an accounted page credits the account it was charged to: directly (page
// cache give_back/drain), through the Root (free_root_cb), or through the Epoch, whose page
// batches remember the account of their pages (Epoch::retire_page(page, account)).
//
// Lifetime: the Mmu owns its account, and ~Mmu runs Epoch::barrier() before it goes away, so no
// batch still refers to it afterwards.
#pragma once

#include "mmu/atomic.h"
#include "mmu/platform.h"
#include "mmu/types.h"

namespace mmu {

class PageAccount {
 public:
  PageAccount() = default;
  PageAccount(const PageAccount&) = delete;
  PageAccount& operator=(const PageAccount&) = delete;

  // 0: no limit. Set once, before the Mmu allocates anything.
  void set_limit(uint64_t pages) { limit_ = pages; }
  uint64_t limit() const { return limit_; }
  uint64_t live() const { return live_.load(Order::relaxed); }
  // Allocations refused because of the limit (not because the platform ran out).
  uint64_t refused() const { return refused_.load(Order::relaxed); }
  // Pages credited back since the account was created (only grows): the difference of two
  // readings is what was freed in between, by anyone (Mmu::reclaim() reports it).
  uint64_t freed() const { return freed_.load(Order::relaxed); }

  // A zeroed page charged to this account, or 0: beyond the limit, exactly as if the platform
  // had run out (the callers turn 0 into an out_of_memory outcome).
  hpa_t alloc(Platform& p) {
    // Claim the page in the count before allocating it, with a CAS that never takes the count
    // past the limit: several vCPUs fault at once, and neither the pages nor the count that
    // others read (statistics, the VM summary) may exceed the limit, not even briefly (a
    // fetch_add-then-undo would let a reader see limit + racing claimers). Relaxed: the count
    // orders nothing, it only has to be exact (every claim and credit is one atomic RMW).
    uint64_t cur = live_.load(Order::relaxed);
    do {
      if (limit_ != 0 && cur >= limit_) {
        refused_.fetch_add(1, Order::relaxed);
        return 0;
      }
    } while (!live_.compare_exchange(cur, cur + 1, Order::relaxed));
    const hpa_t page = p.alloc_page();
    if (page == 0) live_.fetch_sub(1, Order::relaxed);
    return page;
  }
  // Free a page charged to this account now (the caller guarantees nothing can reach it).
  void free(Platform& p, hpa_t page) {
    p.free_page(page);
    credit(1);
  }
  // `pages` charged to this account were freed by someone else (the Epoch's page batches).
  // Credited after the free, so the count never drops below what is really allocated.
  void credit(uint64_t pages) {
    const uint64_t before = live_.fetch_sub(pages, Order::relaxed);
    MMU_ASSERT(before >= pages);
    freed_.fetch_add(pages, Order::relaxed);
  }

 private:
  uint64_t limit_ = 0;
  Atomic<uint64_t> live_{0};
  Atomic<uint64_t> refused_{0};
  Atomic<uint64_t> freed_{0};
};

}  // namespace mmu
