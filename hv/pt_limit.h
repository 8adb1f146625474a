// The default limit on the pages a VM's EPT MMU may hold (mmu/page_account.h counts them:
// root tables and Root objects, paging structures, the vCPUs' page caches), sized from the
// guest-physical memory the VM can map. hv.pt-limit=N overrides it (0: no limit).
//
// Why a default at all: without one, a guest that fast-zaps in a loop while
// another of its vCPUs faults grows its tables without bound (invalid roots wait for their
// teardown) and takes hv's free memory from every other VM.
//
// The formula, for `bytes` of mappable guest-physical space in `ranges` separate ranges (the
// VM's memslots, or the most it can create):
//   full  = a 4 KiB mapping of all of it under a 4-level root:
//           page tables    ceil(bytes / 2 MiB)   + ranges  (a range that is not 2 MiB-aligned
//           page dirs      ceil(bytes / 1 GiB)   + ranges   can touch one more table of each
//           PDPTs          ceil(bytes / 512 GiB) + ranges   level at its ends)
//           + 2 (the root table and its Root object page)
//   limit = kRootCopies * full + kSlackPages
// kRootCopies = 4: the live root plus up to three invalid ones whose teardown is still queued or
// running. A guest that fast-zaps and faults all of its memory in again needs two copies (the
// old one being torn down, the new one); four leave that doubled. However fast a vCPU zaps, the
// MMU's fast-zap backpressure keeps at most mmu::MmuConfig::kDefaultTeardownBacklog (2) old
// trees, so three copies is the most a VM can reach by zapping (static_assert in
// hv/guest_mmu.cpp). kSlackPages covers the vCPUs' page caches (mmu/page_cache.h, PageCache::kCapacity = 8 each) and a few roots of the
// second address space.
//
// Pure code, host-tested (tests/unit/pt_limit_test.cpp).
#pragma once

#include <stdint.h>

#include "hv/vm_limits.h"

namespace hv::pt_limit {

inline constexpr uint64_t kRootCopies = 4;
inline constexpr uint64_t kPageCacheCapacity = 8;  // mmu::PageCache::kCapacity (static_assert in hv/guest_mmu.cpp)
inline constexpr uint64_t kSlackPages = kMaxVcpus * kPageCacheCapacity + 32;

constexpr uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

// Pages for one full 4 KiB mapping of `bytes` in `ranges` ranges (see above).
constexpr uint64_t full_map_pages(uint64_t bytes, unsigned ranges) {
  if (!bytes) return 2;
  const uint64_t r = ranges ? ranges : 1;
  return (ceil_div(bytes, uint64_t{2} << 20) + r) + (ceil_div(bytes, uint64_t{1} << 30) + r) +
         (ceil_div(bytes, uint64_t{512} << 30) + r) + 2;
}

constexpr uint64_t default_limit(uint64_t bytes, unsigned ranges) {
  return kRootCopies * full_map_pages(bytes, ranges) + kSlackPages;
}

}  // namespace hv::pt_limit
