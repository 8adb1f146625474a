// A VM's page quota over the machine's platform (see vm_platform.h).
#include "hv/vm_platform.h"

namespace hv {

void VmPlatform::reset() {
  __atomic_store_n(&pages_, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&limit_hit_, false, __ATOMIC_RELAXED);
}

mmu::hpa_t VmPlatform::alloc_page() {
  // Claim the page in the count first (several vCPUs fault at once): the quota is never
  // exceeded, not even briefly.
  const uint64_t limit = this->limit();
  const uint64_t n = __atomic_add_fetch(&pages_, 1, __ATOMIC_RELAXED);
  if (limit && n > limit) {
    __atomic_sub_fetch(&pages_, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&limit_hit_, true, __ATOMIC_RELAXED);
    return 0;
  }
  const mmu::hpa_t pa = platform().alloc_page();
  if (!pa) __atomic_sub_fetch(&pages_, 1, __ATOMIC_RELAXED);
  return pa;
}

void VmPlatform::free_page(mmu::hpa_t page) {
  // Saturating: pages allocated before a reset() are not counted.
  uint64_t cur = pages();
  while (cur && !__atomic_compare_exchange_n(&pages_, &cur, cur - 1, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  platform().free_page(page);
}

}  // namespace hv
