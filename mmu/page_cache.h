// PageCache: a small per-vCPU stock of zeroed pages for new page-table pages.
//
// The fault path fills it *before* taking the MMU lock (allocation may be slow, and failing it
// must become an "out of memory" outcome, not a half-done update under the lock), then takes
// pages from it while it holds the lock shared. A page taken and not linked (a lost CAS race) is
// zeroed again and given back. Owned by one vCPU: no locking. Every page comes from and goes
// back to the Mmu's PageAccount (mmu/page_account.h): a stocked page counts against the limit.
#pragma once

#include "mmu/page_account.h"
#include "mmu/platform.h"
#include "mmu/types.h"

namespace mmu {

class PageCache {
 public:
  static constexpr unsigned kCapacity = 8;

  PageCache() = default;
  PageCache(const PageCache&) = delete;
  PageCache& operator=(const PageCache&) = delete;

  // Fill up to `want` pages; false if the platform ran out, or the account's limit was reached,
  // before that (what is there stays).
  bool topup(Platform& p, PageAccount& a, unsigned want) {
    if (want > kCapacity) want = kCapacity;
    while (count_ < want) {
      const hpa_t page = a.alloc(p);
      if (page == 0) return false;
      pages_[count_++] = page;
    }
    return true;
  }
  unsigned count() const { return count_; }
  // A zeroed page, or 0 if the cache is empty.
  hpa_t take() { return count_ ? pages_[--count_] : 0; }
  // Return a page that was never made visible to anyone; it is re-zeroed (the caller may have
  // filled it, e.g. with the leaves of a split).
  void give_back(Platform& p, PageAccount& a, hpa_t page) {
    auto* words = static_cast<uint64_t*>(p.phys_to_virt(page));
    for (unsigned i = 0; i < kPageSize / sizeof(uint64_t); i++) words[i] = 0;
    if (count_ < kCapacity) {
      pages_[count_++] = page;
    } else {
      a.free(p, page);
    }
  }
  void drain(Platform& p, PageAccount& a) {
    while (count_) a.free(p, pages_[--count_]);
  }

 private:
  hpa_t pages_[kCapacity] = {};
  unsigned count_ = 0;
};

}  // namespace mmu
