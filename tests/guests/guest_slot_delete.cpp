// Memslot delete: a slot the guest created and touched is deleted; its leaves are zapped (the
// statistics say how many), and later accesses reach hv's unbacked handler: loads return all
// ones, stores are dropped and counted. Created again over the same backing, the data is back.
#include "tests/guests/lib/guest.h"

const char guest_name[] = "slot-delete";

namespace {
constexpr uint32_t kId = 1, kGpa = 0x4000000, kBytes = 4u << 20, kPoolOffset = 32u << 20;
}

void guest_test() {
  require_hv();
  CHECK_EQ(hv_slot_create(kId, kGpa, kBytes, kPoolOffset, 0), HV_OK);
  for (uint32_t a = kGpa; a < kGpa + kBytes; a += 4096) poke32(a, a ^ 0x5A5A5A5A);
  unsigned bad = 0;
  for (uint32_t a = kGpa; a < kGpa + kBytes; a += 4096) bad += peek32(a) != (a ^ 0x5A5A5A5A);
  CHECK_EQ(bad, 0);
  const uint64_t leaves2m = hv_stat(HV_STAT_LEAVES_2M), leaves4k = hv_stat(HV_STAT_LEAVES_4K);
  const uint64_t zapped0 = hv_stat(HV_STAT_ZAPPED_LEAVES);
  gprintf("slot-delete: slot %u at 0x%x (%u MiB) touched: leaves 4K %llu 2M %llu\n", kId, kGpa, kBytes >> 20, leaves4k,
          leaves2m);

  CHECK_EQ(hv_slot_delete(kId), HV_OK);
  const uint64_t zapped = hv_stat(HV_STAT_ZAPPED_LEAVES) - zapped0;
  CHECK(zapped >= 2);  // 4 MiB: at least two 2 MiB leaves (or 1024 4 KiB ones)
  CHECK(hv_stat(HV_STAT_LEAVES_2M) + 2 <= leaves2m || hv_stat(HV_STAT_LEAVES_4K) < leaves4k);
  gprintf("slot-delete: deleted, %llu leaves zapped, leaves now 4K %llu 2M %llu\n", zapped, hv_stat(HV_STAT_LEAVES_4K),
          hv_stat(HV_STAT_LEAVES_2M));
  CHECK_EQ(hv_slot_delete(kId), HV_ENOSLOT);

  // Unbacked now: reads all ones, writes dropped.
  const uint64_t r0 = hv_stat(HV_STAT_UNBACKED_READS), w0 = hv_stat(HV_STAT_UNBACKED_WRITES);
  CHECK_EQ(peek32(kGpa), 0xFFFFFFFFu);
  CHECK_EQ(peek32(kGpa + kBytes - 4), 0xFFFFFFFFu);
  CHECK_EQ(peek8(kGpa + 5), 0xFF);
  poke32(kGpa, 0x11111111);
  poke32(kGpa + 0x1000, 0x22222222);
  CHECK_EQ(peek32(kGpa), 0xFFFFFFFFu);
  CHECK_EQ(hv_stat(HV_STAT_UNBACKED_READS) - r0, 4);
  CHECK_EQ(hv_stat(HV_STAT_UNBACKED_WRITES) - w0, 2);
  gprintf("slot-delete: unbacked: %llu reads gave all ones, %llu writes dropped\n", hv_stat(HV_STAT_UNBACKED_READS) - r0,
          hv_stat(HV_STAT_UNBACKED_WRITES) - w0);

  // MOV forms against the unbacked range (hv's emulator, hv/emulate/): the
  // loaded register gets all ones in exactly the bytes the instruction writes.
  const uint64_t r1 = hv_stat(HV_STAT_UNBACKED_READS), w1 = hv_stat(HV_STAT_UNBACKED_WRITES);
  uint32_t v;
  asm volatile("movl 0x4000000, %%eax" : "=a"(v) : : "memory");  // A1: moffs32
  CHECK_EQ(v, 0xFFFFFFFFu);
  asm volatile("movzbl (%1), %0" : "=r"(v) : "r"(kGpa + 3) : "memory");
  CHECK_EQ(v, 0xFF);
  asm volatile("movzwl 2(%1), %0" : "=r"(v) : "r"(kGpa) : "memory");
  CHECK_EQ(v, 0xFFFF);
  v = 0x12345678;
  asm volatile("movb (%1), %%ah" : "+a"(v) : "r"(kGpa) : "memory");
  CHECK_EQ(v, 0x1234FF78);
  v = 0x12345678;
  asm volatile("movw (%1), %%ax" : "+a"(v) : "r"(kGpa) : "memory");
  CHECK_EQ(v, 0x1234FFFF);
  asm volatile("movl $0x55, 8(%0,%1,4)" : : "r"(kGpa), "r"(1) : "memory");  // C7 /0, SIB + disp8
  asm volatile("movb %%al, 0x100(%1)" : : "a"(0x11), "r"(kGpa) : "memory");  // 88 /r, disp32
  CHECK_EQ(hv_stat(HV_STAT_UNBACKED_READS) - r1, 5);
  CHECK_EQ(hv_stat(HV_STAT_UNBACKED_WRITES) - w1, 2);
  gprintf("slot-delete: 7 MOV forms (moffs, movzx b/w, ah, 16-bit, imm, byte store) emulated as unbacked\n");

  // The backing is the pool's: the same offset mapped again shows the old data, untouched by
  // the dropped writes.
  CHECK_EQ(hv_slot_create(kId, kGpa, kBytes, kPoolOffset, 0), HV_OK);
  bad = 0;
  for (uint32_t a = kGpa; a < kGpa + kBytes; a += 4096) bad += peek32(a) != (a ^ 0x5A5A5A5A);
  CHECK_EQ(bad, 0);
  CHECK_EQ(hv_slot_delete(kId), HV_OK);

  // A slot whose backing is 4 KiB off a 2 MiB boundary (guest and pool offsets not congruent
  // modulo 2 MiB) can only get 4 KiB leaves: deleting it zaps each of them.
  constexpr uint32_t kId4k = 4, kGpa4k = 0x5000000, kBytes4k = 1u << 20, kOffset4k = (36u << 20) + 4096;
  CHECK_EQ(hv_slot_create(kId4k, kGpa4k, kBytes4k, kOffset4k, 0), HV_OK);
  const uint64_t l4k0 = hv_stat(HV_STAT_LEAVES_4K);
  for (uint32_t a = kGpa4k; a < kGpa4k + kBytes4k; a += 4096) poke32(a, a);
  const uint64_t l4k = hv_stat(HV_STAT_LEAVES_4K) - l4k0;
  CHECK_EQ(l4k, kBytes4k / 4096);
  const uint64_t z0 = hv_stat(HV_STAT_ZAPPED_LEAVES);
  CHECK_EQ(hv_slot_delete(kId4k), HV_OK);
  CHECK_EQ(hv_stat(HV_STAT_ZAPPED_LEAVES) - z0, l4k);
  CHECK_EQ(hv_stat(HV_STAT_LEAVES_4K), l4k0);
  CHECK_EQ(peek32(kGpa4k + 0x1000), 0xFFFFFFFFu);
  gprintf("slot-delete: 4K-only slot: %llu 4K leaves mapped, all %llu zapped by the delete\n", l4k,
          hv_stat(HV_STAT_ZAPPED_LEAVES) - z0);
}
