// Memory checker: writes a pattern of its own over its RAM and checks it, pass after pass, to
// run beside another VM (hv.run=guest-A,guest-memcheck): whatever the other VM does (fuzzing
// hypercalls, fast zaps, memslot churn, running out of page tables), this VM's memory must keep
// exactly what it wrote, and its own counters must show nothing it did not do.
//
// The pattern is seeded from the TSC at start, so two checker VMs side by side write different
// values: a page shared between them, or one VM's write landing in the other, would show as a
// mismatch in both. RAM checked: slot 0 from 2 MiB (above the image) and a 32 MiB guest slot
// from the upper half of the pool; one word per 256 bytes, every pass a new pattern.
#include "tests/guests/lib/guest.h"

const char guest_name[] = "memcheck";

namespace {

constexpr uint32_t kSlot = 1, kSlotGpa = 0x4000000, kSlotBytes = 32u << 20, kPoolOffset = 32u << 20;
constexpr uint32_t kLowStart = 2u << 20;
constexpr uint32_t kStep = 256;
constexpr unsigned kPasses = 16;

uint32_t g_seed = 0;

uint32_t pattern(unsigned pass, uint32_t addr) {
  uint32_t x = g_seed ^ (pass * 0x9E3779B1u) ^ (addr * 0x85EBCA77u);
  x ^= x >> 15;
  x *= 0x2C1B3C6Du;
  return x ^ (x >> 12);
}

// Writes (write = true) or checks the pass's pattern over [start, end); returns mismatches.
unsigned sweep(unsigned pass, uint32_t start, uint32_t end, bool write) {
  unsigned bad = 0;
  for (uint32_t a = start; a < end; a += kStep) {
    if (write) {
      poke32(a, pattern(pass, a));
    } else if (peek32(a) != pattern(pass, a)) {
      if (bad++ < 4) gprintf("memcheck: pass %u: gpa 0x%x holds 0x%x, wrote 0x%x\n", pass, a, peek32(a), pattern(pass, a));
    }
  }
  return bad;
}

}  // namespace

void guest_test() {
  require_hv();
  uint32_t lo, hi;
  asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
  g_seed = (lo ^ (hi * 0x27D4EB2Fu)) | 1;
  const uint32_t ram = hv_call(HV_CALL_POOL_INFO).rcx;
  CHECK_EQ(hv_slot_create(kSlot, kSlotGpa, kSlotBytes, kPoolOffset, 0), HV_OK);
  gprintf("memcheck: seed 0x%x; checking [0x%x, 0x%x) and slot %u [0x%x, 0x%x)\n", g_seed, kLowStart, ram, kSlot,
          kSlotGpa, kSlotGpa + kSlotBytes);
  unsigned bad = 0;
  for (unsigned pass = 0; pass < kPasses; pass++) {
    sweep(pass, kLowStart, ram, true);
    sweep(pass, kSlotGpa, kSlotGpa + kSlotBytes, true);
    bad += sweep(pass, kLowStart, ram, false);
    bad += sweep(pass, kSlotGpa, kSlotGpa + kSlotBytes, false);
  }
  const uint64_t words = uint64_t{kPasses} * ((ram - kLowStart) + kSlotBytes) / kStep;
  // Nothing this VM did not do itself shows in its counters.
  const uint64_t ub_r = hv_stat(HV_STAT_UNBACKED_READS), ub_w = hv_stat(HV_STAT_UNBACKED_WRITES),
                 ro_w = hv_stat(HV_STAT_READONLY_WRITES), errs = hv_stat(HV_STAT_HYPERCALL_ERRORS);
  gprintf("memcheck: %u passes, %llu words written and checked: %u wrong; unbacked reads %llu writes %llu, read-only "
          "writes %llu, hypercall errors %llu\n",
          kPasses, words, bad, ub_r, ub_w, ro_w, errs);
  CHECK_EQ(bad, 0);
  CHECK_EQ(ub_r + ub_w + ro_w + errs, 0);
  CHECK_EQ(hv_slot_delete(kSlot), HV_OK);
}
