// Hostile hypercalls: first the memslot requests hv must refuse, each with its code (overlap,
// misaligned, too large, too many, hv's own slot, the reserved flag); then a seeded PRNG makes
// thousands of VMCALLs with random call numbers and arguments. Every call must come back with
// HV_OK or one of the documented error codes, and the guest's own memory must be intact at the
// end (hv stayed up and harmed nothing).
//
// The random calls are hostile but not suicidal: HV_CALL_EXIT is left out (it would end the
// test) and HV_CALL_RESULT too (it only prints); a HV_CALL_STATS_COPY into the guest's own
// boot RAM is pointed at a scratch buffer instead, and random slots are backed from the upper
// half of the pool only, so that no slot aliases the boot RAM (hv would honour both: that
// memory is the guest's to overwrite).
#include "tests/guests/lib/guest.h"

const char guest_name[] = "fuzz";

namespace {

constexpr unsigned kCalls = 4000;
constexpr uint32_t kSeed = 0x1234ABCD;
uint32_t g_state = kSeed;
uint32_t g_canary[1024];
hv_stats g_scratch;

uint32_t rnd() {  // xorshift32
  g_state ^= g_state << 13;
  g_state ^= g_state >> 17;
  g_state ^= g_state << 5;
  return g_state;
}

// Arguments that hit the interesting cases more often than uniform random numbers would.
uint32_t arg() {
  switch (rnd() & 7) {
    case 0: return rnd();
    case 1: return rnd() & 0x3F;                      // small: slot ids, flags
    case 2: return (rnd() & 0xFF) << 20;              // MiB-aligned addresses and sizes
    case 3: return ((rnd() & 0x3FF) << 12);           // page-aligned, below 4 MiB
    case 4: return 0xFFFFF000u - ((rnd() & 7) << 12); // near 4 GiB
    case 5: return (rnd() & 0xFFFF) | 1;              // misaligned
    case 6: return 0;
    default: return 0x2000000 + ((rnd() & 0x1F) << 21);  // 32-96 MiB, 2 MiB-aligned
  }
}

void refusals() {
  constexpr uint32_t kGpa = 0x4000000, k2M = 2u << 20, kPool = 32u << 20;
  CHECK_EQ(hv_slot_create(1, 0x1000000, k2M, kPool, 0), HV_EOVERLAP);        // inside the boot RAM
  CHECK_EQ(hv_slot_create(1, 0x1FFF000, k2M, kPool, 0), HV_EOVERLAP);        // straddles its end
  CHECK_EQ(hv_slot_create(1, kGpa + 0x10, k2M, kPool, 0), HV_EALIGN);
  CHECK_EQ(hv_slot_create(1, kGpa, k2M + 0x200, kPool, 0), HV_EALIGN);
  CHECK_EQ(hv_slot_create(1, kGpa, k2M, kPool + 0x800, 0), HV_EALIGN);
  CHECK_EQ(hv_slot_create(1, kGpa, 0x8000000, 0, 0), HV_ETOOLARGE);          // more than the pool
  CHECK_EQ(hv_slot_create(1, kGpa, k2M, 63u << 20, 0), HV_ETOOLARGE);        // past the pool's end
  CHECK_EQ(hv_slot_create(1, 0xFFE00000u, 4u << 20, kPool, 0), HV_ETOOLARGE); // past 4 GiB
  CHECK_EQ(hv_slot_create(1, kGpa, 0, kPool, 0), HV_EINVAL);
  CHECK_EQ(hv_slot_create(64, kGpa, k2M, kPool, 0), HV_EINVAL);
  CHECK_EQ(hv_slot_create(0, kGpa, k2M, kPool, 0), HV_EEXIST);               // hv's slot 0
  CHECK_EQ(hv_slot_create(1, kGpa, k2M, kPool, HV_SLOT_DIRTY_LOG | HV_SLOT_READONLY), HV_EPERM);
  CHECK_EQ(hv_slot_delete(0), HV_EPERM);
  CHECK_EQ(hv_slot_delete(5), HV_ENOSLOT);
  // Overlap between two guest slots, and the per-VM limit.
  CHECK_EQ(hv_slot_create(1, kGpa, k2M, kPool, 0), HV_OK);
  CHECK_EQ(hv_slot_create(2, kGpa + 0x1000, 0x1000, kPool, 0), HV_EOVERLAP);
  CHECK_EQ(hv_slot_create(1, kGpa + k2M, k2M, kPool, 0), HV_EEXIST);
  for (uint32_t id = 2; id <= HV_MAX_GUEST_SLOTS; id++)
    CHECK_EQ(hv_slot_create(id, kGpa + id * k2M, 0x1000, kPool, 0), HV_OK);
  CHECK_EQ(hv_slot_create(HV_MAX_GUEST_SLOTS + 1, 0x8000000, 0x1000, kPool, 0), HV_ETOOMANY);
  for (uint32_t id = 1; id <= HV_MAX_GUEST_SLOTS; id++) CHECK_EQ(hv_slot_delete(id), HV_OK);
  gprintf("fuzz: refusals ok (overlap, misaligned, too large, too many, permission, reserved flag)\n");
}

}  // namespace

void guest_test() {
  require_hv();
  refusals();
  for (unsigned i = 0; i < 1024; i++) g_canary[i] = i * 0x9E3779B9u;

  unsigned by_status[14] = {};
  unsigned odd = 0, touches = 0;
  for (unsigned i = 0; i < kCalls; i++) {
    uint32_t nr = (rnd() & 3) ? rnd() % (HV_CALL_MAX + 3) : rnd();
    if (nr == HV_CALL_EXIT || nr == HV_CALL_RESULT) nr = HV_CALL_VERSION;
    uint32_t a[5] = {arg(), arg(), arg(), arg(), arg()};
    if (nr >= HV_CALL_MEMSLOT_CREATE && nr <= HV_CALL_MEMSLOT_FLAGS && (rnd() & 1)) {
      // Half of the memslot calls get plausible arguments, so that the random phase also
      // reaches the deeper checks (overlap, the pool and 4 GiB limits, the slot limit) and
      // really creates, moves and deletes slots.
      a[0] = 1 + rnd() % 12;
      a[1] = (rnd() & 3) ? (rnd() % 64) << 21 : 0xFFE00000u - ((rnd() & 3) << 21);
      a[2] = (rnd() & 1) ? (1 + rnd() % 4) << 21 : (1 + rnd() % 16) << 12;
      a[3] = (rnd() % 16) << 21;
      a[4] = (rnd() & 7) ? 0 : HV_SLOT_READONLY;
      if (nr == HV_CALL_MEMSLOT_FLAGS) a[1] = a[4];
    }
    if (nr == HV_CALL_MEMSLOT_CREATE && a[3] < (32u << 20)) a[3] += 32u << 20;
    if (nr == HV_CALL_STATS_COPY && a[0] < 0x2000000) a[0] = reinterpret_cast<uint32_t>(&g_scratch);
    if (nr == HV_CALL_INVALIDATE_ROOTS && (rnd() & 15)) nr = HV_CALL_STAT;  // keep the zaps rarer
    const HvRet r = hv_call(nr, a[0], a[1], a[2], a[3], a[4]);
    if ((i & 7) == 0) {
      // Touch memory where the random slots come and go (32 MiB-128 MiB): backed, unbacked or
      // read-only at this moment, each access must complete (faults, zaps and hv's
      // unbacked/read-only emulation interleaved with the slot churn).
      const uint32_t addr = 0x2000000 + ((rnd() % (96u << 20)) & ~3u);
      if (rnd() & 1) poke32(addr, i);
      else (void)peek32(addr);
      touches++;
    }
    if (r.status <= 0 && r.status >= -13) by_status[-r.status]++;
    else if (odd++ < 5) gprintf("fuzz: call %u(0x%x, 0x%x, 0x%x) returned %d\n", nr, a[0], a[1], a[2], r.status);
  }
  CHECK_EQ(odd, 0);
  gprintf("fuzz: %u memory touches in the churned range completed; hv counted %llu unbacked reads, %llu unbacked "
          "writes, %llu read-only writes\n",
          touches, hv_stat(HV_STAT_UNBACKED_READS), hv_stat(HV_STAT_UNBACKED_WRITES), hv_stat(HV_STAT_READONLY_WRITES));
  gprintf("fuzz: %u random hypercalls (seed 0x%x): ok %u, unknown %u, inval %u, perm %u, noslot %u, overlap %u, align %u, "
          "toolarge %u, toomany %u, exist %u, fault %u, notsup %u\n",
          kCalls, kSeed, by_status[0], by_status[1], by_status[2], by_status[3], by_status[4], by_status[5], by_status[6],
          by_status[7], by_status[8], by_status[11], by_status[12], by_status[13]);
  unsigned bad = 0;
  for (unsigned i = 0; i < 1024; i++) bad += g_canary[i] != i * 0x9E3779B9u;
  CHECK_EQ(bad, 0);
  // Whatever slots the fuzz created go away again; hv's answer is ok or "no such slot".
  for (uint32_t id = 1; id <= HV_SLOT_ID_LAST; id++) {
    const int32_t s = hv_slot_delete(id);
    CHECK(s == HV_OK || s == HV_ENOSLOT);
  }
  CHECK_EQ(hv_call(HV_CALL_VERSION).rbx, HV_ABI_VERSION);
}
