// Live migration guest (hv/migrate.h, docs/migration.md): every vCPU keeps writing a running
// pattern over its own part of the RAM, in the boot RAM slot and in a memslot the guest creates,
// for run-ms of guest time (argument run-ms=N, default 6000), while hv moves the VM to a new one
// (hv.migrate-ms); then it checks every word it wrote. The guest is not told about the move:
// the verdict comes from the memory contents only (and from the registers and stack that carry
// the loop across the move).
//
// The pattern: a first pass writes every word; pass p then writes the "cold" words whose index
// is p modulo 64 (so every page is written in every pass, but each word only every 64th pass)
// and rewrites the whole "hot" area (the first 64 KiB of the vCPU's boot-RAM part). Every write
// first checks that the word still holds what this vCPU wrote there last (pass p - 64 for a cold
// word, p - 1 for a hot one): a write lost in the move (a page copied before the write and never
// again) shows at the next pass that touches the word in the new VM, even though that pass
// overwrites it. At the end, with N passes done, every word is checked once more.
#include "tests/guests/lib/guest.h"

const char guest_name[] = "migrate";

namespace {

constexpr uint32_t kSlot = 1, kSlotGpa = 0xD0000000u;  // above any boot RAM (hv.guest-mem <= 3 GiB), below the APICs
constexpr uint32_t kLowBase = 8u << 20;  // above the image and the library's data
constexpr uint32_t kLowBytes = 2u << 20;  // per vCPU, in the boot RAM slot
constexpr uint32_t kSlotBytes = 1u << 20; // per vCPU, in the guest's memslot
constexpr uint32_t kHotBytes = 64u << 10;
constexpr unsigned kStride = 64;
constexpr uint32_t kFirstPass = 0xFFFFu;  // the pass number of the initial fill

uint32_t g_seed = 0;
uint64_t g_run_cycles = 0;
uint32_t g_passes[HV_MAX_VCPUS];
uint32_t g_bad = 0;
uint64_t g_checked = 0;

uint32_t pattern(uint32_t pass, uint32_t addr) {
  uint32_t x = g_seed ^ (pass * 0x9E3779B1u) ^ (addr * 0x85EBCA77u);
  x ^= x >> 15;
  x *= 0x2C1B3C6Du;
  return x ^ (x >> 12);
}

struct Range {
  uint32_t start, end;
};

// The vCPU's cold ranges (its boot-RAM part past the hot area, and its memslot part).
void cold_ranges(unsigned v, Range out[2]) {
  const uint32_t low = kLowBase + v * kLowBytes;
  out[0] = {low + kHotBytes, low + kLowBytes};
  out[1] = {kSlotGpa + v * kSlotBytes, kSlotGpa + (v + 1) * kSlotBytes};
}

uint32_t word_index(uint32_t a) { return a / 4; }

// The last pass < n that wrote cold word at `a` (kFirstPass: only the initial fill).
uint32_t last_cold_pass(uint32_t a, uint32_t n) {
  const uint32_t r = word_index(a) % kStride;
  if (n <= r) return kFirstPass;
  return r + kStride * ((n - 1 - r) / kStride);
}

// "run-ms=N" from the multiboot command line, else `fallback`.
uint64_t arg_run_ms(uint64_t fallback) {
  const uint32_t* mbi = reinterpret_cast<const uint32_t*>(multiboot_info());
  if (!(mbi[0] & (1u << 2))) return fallback;
  const char* s = reinterpret_cast<const char*>(static_cast<uintptr_t>(mbi[4]));
  for (; *s; s++) {
    const char key[] = "run-ms=";
    unsigned k = 0;
    while (key[k] && s[k] == key[k]) k++;
    if (key[k]) continue;
    uint64_t v = 0;
    for (s += k; *s >= '0' && *s <= '9'; s++) v = v * 10 + static_cast<uint64_t>(*s - '0');
    return v;
  }
  return fallback;
}

void run(unsigned v) {
  const uint32_t low = kLowBase + v * kLowBytes;
  Range cold[2];
  cold_ranges(v, cold);
  // The initial fill: every word of the vCPU's part.
  for (uint32_t a = low; a < low + kHotBytes; a += 4) poke32(a, pattern(kFirstPass, a));
  for (const Range& r : cold)
    for (uint32_t a = r.start; a < r.end; a += 4) poke32(a, pattern(kFirstPass, a));
  unsigned bad = 0;
  uint64_t checked = 0;
  auto check = [&](uint32_t a, uint32_t want) {
    checked++;
    const uint32_t got = peek32(a);
    if (got != want && bad++ < 4) gprintf("migrate: vcpu%u: gpa 0x%x holds 0x%x, expected 0x%x\n", v, a, got, want);
  };
  const uint64_t t0 = rdtsc();
  uint32_t pass = 0;
  do {
    const uint32_t phase = pass % kStride;
    const uint32_t prev_cold = pass >= kStride ? pass - kStride : kFirstPass;
    for (const Range& r : cold)
      for (uint32_t a = r.start + 4 * ((phase + kStride - word_index(r.start) % kStride) % kStride); a < r.end; a += 4 * kStride) {
        check(a, pattern(prev_cold, a));
        poke32(a, pattern(pass, a));
      }
    const uint32_t prev_hot = pass ? pass - 1 : kFirstPass;
    for (uint32_t a = low; a < low + kHotBytes; a += 4) {
      check(a, pattern(prev_hot, a));
      poke32(a, pattern(pass, a));
    }
    pass++;
  } while (rdtsc() - t0 < g_run_cycles);
  g_passes[v] = pass;  // in memory as well: it must agree with the register copy below
  // Check everything once more.
  for (uint32_t a = low; a < low + kHotBytes; a += 4) check(a, pattern(pass - 1, a));
  for (const Range& r : cold)
    for (uint32_t a = r.start; a < r.end; a += 4) check(a, pattern(last_cold_pass(a, pass), a));
  if (g_passes[v] != pass) {
    gprintf("migrate: vcpu%u: pass count in memory %u, in registers %u\n", v, g_passes[v], pass);
    bad++;
  }
  gprintf("migrate: vcpu%u: %u passes over %u KiB (%u KiB rewritten each pass), %llu words checked, %u wrong\n", v, pass,
          (kLowBytes + kSlotBytes) >> 10, kHotBytes >> 10, checked, bad);
  __atomic_fetch_add(&g_bad, bad, __ATOMIC_RELAXED);
  __atomic_fetch_add(&g_checked, checked, __ATOMIC_RELAXED);
}

}  // namespace

void guest_test() {
  require_hv();
  uint32_t lo, hi;
  asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
  g_seed = (lo ^ (hi * 0x27D4EB2Fu)) | 1;
  const unsigned n = vcpu_count();
  const uint32_t boot_ram = static_cast<uint32_t>(hv_call(HV_CALL_POOL_INFO).rcx);
  CHECK(kLowBase + n * kLowBytes <= boot_ram);
  // The TSC rate from hv's timing leaf (EAX: kHz).
  const uint64_t khz = cpuid(0x40000010).a;
  CHECK(khz != 0);
  const uint64_t ms = arg_run_ms(6000);
  g_run_cycles = khz * ms;
  CHECK_EQ(hv_slot_create(kSlot, kSlotGpa, n * kSlotBytes, boot_ram, 0), HV_OK);
  gprintf("migrate: %u vCPU(s), seed 0x%x, writing for %llu ms of guest time: each vCPU 2 MiB of boot RAM from 0x%x and "
          "1 MiB of slot %u at 0x%x\n",
          n, g_seed, ms, kLowBase, kSlot, kSlotGpa);
  if (n > 1) smp_start(run);
  run(0);
  smp_wait_done();
  gprintf("migrate: %u vCPU(s): %llu words checked, %u wrong\n", n, g_checked, g_bad);
  CHECK_EQ(g_bad, 0);
  CHECK_EQ(hv_slot_delete(kSlot), HV_OK);
}
