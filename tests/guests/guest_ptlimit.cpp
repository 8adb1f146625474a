// Running out of page-table pages (hv.pt-limit=N, mmu/page_account.h): the guest maps eight
// 16 MiB slots spread over its 4 GiB of guest-physical space, all backed by the same pool range
// 4 KiB past a 2 MiB boundary (so only 4 KiB leaves fit), and touches one page in every 2 MiB:
// each touch needs a page table of its own. With a small limit, hv must stop the VM with
// "vmN: out of page-table pages (limit N)" part-way, free everything and shut down cleanly.
// If every touch succeeds the limit was not enforced: the guest says so and fails.
// With several vCPUs, vCPU i touches every N-th slot, so the limit is hit by racing faults.
#include "tests/guests/lib/guest.h"

const char guest_name[] = "ptlimit";

namespace {

constexpr unsigned kSlots = 8;
constexpr uint32_t kSlotBytes = 16u << 20;
constexpr uint32_t kStride = 0x10000000;              // slot k at k * 256 MiB
constexpr uint32_t kPoolOffset = (32u << 20) + 4096;  // 4 KiB past 2 MiB: 4 KiB leaves only
uint32_t g_touched = 0;

void touch(unsigned vcpu) {
  const unsigned n = vcpu_count();
  for (unsigned k = vcpu; k < kSlots; k += n) {
    const uint32_t base = (k + 1) * kStride;
    for (uint32_t off = 0; off < kSlotBytes; off += 2u << 20) {
      poke32(base + off + 4096, 0xC0DE0000u | k);
      __atomic_fetch_add(&g_touched, 1, __ATOMIC_RELAXED);
    }
    gprintf("ptlimit: vcpu%u: slot %u at 0x%x touched (%u pages so far)\n", vcpu, k + 1, base,
            __atomic_load_n(&g_touched, __ATOMIC_RELAXED));
  }
}

}  // namespace

void guest_test() {
  require_hv();
  for (unsigned k = 0; k < kSlots; k++)
    CHECK_EQ(hv_slot_create(k + 1, (k + 1) * kStride, kSlotBytes, kPoolOffset, 0), HV_OK);
  gprintf("ptlimit: %u slots of 16 MiB (4K-only backing) created; touching one page per 2 MiB with %u vCPU(s)\n",
          kSlots, vcpu_count());
  if (vcpu_count() > 1) smp_start(touch);
  touch(0);
  smp_wait_done();
  // Only reached when hv never refused a page table.
  gprintf("ptlimit: all %u sparse pages touched: no page-table limit stopped the VM\n", g_touched);
  CHECK(false);
}
