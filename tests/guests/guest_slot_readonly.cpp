// Read-only slot: reads work; a write is dropped and counted (docs/hypercalls.md) and the data
// stays unchanged; made writable again, writes land. A read-only slot cannot be dirty-logged.
#include "tests/guests/lib/guest.h"

const char guest_name[] = "slot-readonly";

namespace {
constexpr uint32_t kId = 3, kGpa = 0x4000000, kBytes = 2u << 20, kPoolOffset = 34u << 20;
}

void guest_test() {
  require_hv();
  CHECK_EQ(hv_slot_create(kId, kGpa, kBytes, kPoolOffset, HV_SLOT_DIRTY_LOG | HV_SLOT_READONLY), HV_EPERM);
  CHECK_EQ(hv_slot_create(kId, kGpa, kBytes, kPoolOffset, 0x80), HV_EINVAL);
  CHECK_EQ(hv_slot_create(kId, kGpa, kBytes, kPoolOffset, 0), HV_OK);
  for (uint32_t a = 0; a < kBytes; a += 4096) poke32(kGpa + a, 0x0D000000 | a);

  CHECK_EQ(hv_slot_flags(kId, HV_SLOT_READONLY), HV_OK);
  const uint64_t w0 = hv_stat(HV_STAT_READONLY_WRITES);
  CHECK_EQ(peek32(kGpa + 0x3000), 0x0D003000u);  // reads still work
  poke32(kGpa + 0x3000, 0xBAD00BAD);
  poke32(kGpa + 0x100000, 0xBAD00BAD);
  CHECK_EQ(peek32(kGpa + 0x3000), 0x0D003000u);  // unchanged
  CHECK_EQ(peek32(kGpa + 0x100000), 0x0D100000u);
  CHECK_EQ(hv_stat(HV_STAT_READONLY_WRITES) - w0, 2);
  gprintf("slot-readonly: %llu writes to the read-only slot dropped, data unchanged\n",
          hv_stat(HV_STAT_READONLY_WRITES) - w0);
  CHECK_EQ(hv_slot_flags(kId, HV_SLOT_DIRTY_LOG), HV_EINVAL);  // START/STOP switch logging
  CHECK_EQ(hv_call(HV_CALL_DIRTY_LOG_START, kId).status, HV_EPERM);  // nothing to log on a read-only slot
  CHECK_EQ(hv_slot_flags(0, HV_SLOT_READONLY), HV_EPERM);

  // Writable again: the next write faults in a writable leaf and lands.
  CHECK_EQ(hv_slot_flags(kId, 0), HV_OK);
  poke32(kGpa + 0x3000, 0x600D600D);
  CHECK_EQ(peek32(kGpa + 0x3000), 0x600D600Du);
  CHECK_EQ(hv_stat(HV_STAT_READONLY_WRITES) - w0, 2);
  gprintf("slot-readonly: writable again, write landed\n");
  CHECK_EQ(hv_slot_delete(kId), HV_OK);
}
