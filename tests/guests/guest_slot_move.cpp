// Memslot move: the same backing, with its data, appears at the new guest-physical address;
// the old one reads as unbacked (all ones). Bad moves are refused with the right codes.
#include "tests/guests/lib/guest.h"

const char guest_name[] = "slot-move";

namespace {
constexpr uint32_t kId = 2, kOld = 0x4000000, kNew = 0x9000000, kBytes = 2u << 20, kPoolOffset = 40u << 20;
}

void guest_test() {
  require_hv();
  CHECK_EQ(hv_slot_create(kId, kOld, kBytes, kPoolOffset, 0), HV_OK);
  for (uint32_t a = 0; a < kBytes; a += 512) poke32(kOld + a, 0xA0000000 | a);
  const uint64_t zapped0 = hv_stat(HV_STAT_ZAPPED_LEAVES);

  CHECK_EQ(hv_slot_move(kId, kNew), HV_OK);
  gprintf("slot-move: moved slot %u from 0x%x to 0x%x, %llu leaves zapped\n", kId, kOld, kNew,
          hv_stat(HV_STAT_ZAPPED_LEAVES) - zapped0);
  CHECK(hv_stat(HV_STAT_ZAPPED_LEAVES) > zapped0);
  unsigned bad = 0;
  for (uint32_t a = 0; a < kBytes; a += 512) bad += peek32(kNew + a) != (0xA0000000 | a);
  CHECK_EQ(bad, 0);
  CHECK_EQ(peek32(kOld), 0xFFFFFFFFu);
  CHECK_EQ(peek32(kOld + kBytes - 4), 0xFFFFFFFFu);
  gprintf("slot-move: data intact at the new address (%u words), old address reads 0x%x\n", kBytes / 512, peek32(kOld));

  // Refused moves change nothing.
  CHECK_EQ(hv_slot_move(kId, 0x100000), HV_EOVERLAP);       // onto the boot RAM
  CHECK_EQ(hv_slot_move(kId, kNew + 0x800), HV_EALIGN);
  CHECK_EQ(hv_slot_move(kId, 0xFFF00000u), HV_ETOOLARGE);    // would end beyond 4 GiB
  CHECK_EQ(hv_slot_move(0, kNew), HV_EPERM);                 // hv's boot RAM slot
  CHECK_EQ(hv_slot_move(7, kNew), HV_ENOSLOT);
  CHECK_EQ(peek32(kNew + 512), 0xA0000200u);

  // And back: the data follows again.
  CHECK_EQ(hv_slot_move(kId, kOld), HV_OK);
  CHECK_EQ(peek32(kOld + 1024), 0xA0000400u);
  CHECK_EQ(peek32(kNew), 0xFFFFFFFFu);
  CHECK_EQ(hv_slot_delete(kId), HV_OK);
}
