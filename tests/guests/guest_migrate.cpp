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
//
// The x87/SSE/AVX registers move too: before the first pass each vCPU loads XMM0-7, the upper
// halves of YMM0-7 (with AVX), two x87 stack entries and a non-default MXCSR with values of its
// own, keeps them there (the guest's C++ uses no extended state: -mgeneral-regs-only) and
// compares them after the last pass. hv resets the CPU's extended state when it saves a vCPU
// for the move, so only a restore from the saved area brings them back
// (hv.migrate-test=lose-fpu leaves it out: then this check fails).
#include "tests/guests/lib/guest.h"

const char guest_name[] = "migrate";

extern "C" {
void xstate_load_xmm(const void* src);
void xstate_store_xmm(void* dst);
void xstate_load_ymm_hi(const void* src);
void xstate_store_ymm_hi(void* dst);
}

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

// --- the extended-state registers kept across the move ---
struct Xregs {
  alignas(16) uint32_t xmm[32];     // XMM0-7
  alignas(16) uint32_t ymm_hi[32];  // YMM0-7 bits 255:128
  uint64_t st[2];                   // pushed on the x87 stack: st[0] first
  uint32_t mxcsr;
};
Xregs g_xwant[HV_MAX_VCPUS], g_xgot[HV_MAX_VCPUS];
constexpr uint32_t kMxcsr = 0x1F80u | (3u << 13);  // all masked, round toward zero (reset: 0x1F80)

void fill_xregs(unsigned v, Xregs& x) {
  for (uint32_t i = 0; i < 32; i++) {
    x.xmm[i] = pattern(0xF000u + v, i);
    x.ymm_hi[i] = pattern(0xF100u + v, i);
  }
  x.st[0] = (uint64_t{pattern(0xF200u + v, 0)} << 20) | 1;  // integers an x87 register holds exactly
  x.st[1] = (uint64_t{pattern(0xF200u + v, 1)} << 18) | 3;
  x.mxcsr = kMxcsr;
}

// Enables SSE (and AVX when CPUID offers it: CR4.OSXSAVE, XCR0 = x87|SSE|AVX) on this vCPU and
// loads its values. Returns whether AVX is on.
bool xregs_load(unsigned v) {
  uint32_t cr0, cr4;
  asm volatile("mov %%cr0, %0" : "=r"(cr0));
  asm volatile("mov %%cr4, %0" : "=r"(cr4));
  cr0 = (cr0 & ~((1u << 2) | (1u << 3))) | (1u << 1);  // EM off, TS off, MP on
  cr4 |= (1u << 9) | (1u << 10);                        // OSFXSR, OSXMMEXCPT
  const Cpuid l1 = cpuid(1);
  const Cpuid d0 = (l1.c & (1u << 26)) ? cpuid(0xD, 0) : Cpuid{};
  const bool avx = (l1.c & (1u << 26)) && (l1.c & (1u << 28)) && (d0.a & 4);
  if (avx) cr4 |= 1u << 18;                             // OSXSAVE
  asm volatile("mov %0, %%cr0" ::"r"(cr0) : "memory");
  asm volatile("mov %0, %%cr4" ::"r"(cr4) : "memory");
  if (avx) asm volatile("xsetbv" ::"c"(0), "a"(7), "d"(0) : "memory");
  Xregs& x = g_xwant[v];
  fill_xregs(v, x);
  asm volatile("fninit; fildll %0; fildll %1; ldmxcsr %2" ::"m"(x.st[0]), "m"(x.st[1]), "m"(x.mxcsr) : "memory");
  xstate_load_xmm(x.xmm);
  if (avx) xstate_load_ymm_hi(x.ymm_hi);
  return avx;
}

// Reads the registers back and compares; the number of registers that differ.
unsigned xregs_check(unsigned v, bool avx) {
  Xregs& got = g_xgot[v];
  const Xregs& want = g_xwant[v];
  xstate_store_xmm(got.xmm);
  if (avx) xstate_store_ymm_hi(got.ymm_hi);
  asm volatile("stmxcsr %0; fistpll %1; fistpll %2" : "=m"(got.mxcsr), "=m"(got.st[1]), "=m"(got.st[0])::"memory");
  unsigned bad = 0;
  for (unsigned r = 0; r < 8; r++) {
    bool x_ok = true, y_ok = true;
    for (unsigned w = 0; w < 4; w++) {
      x_ok &= got.xmm[4 * r + w] == want.xmm[4 * r + w];
      y_ok &= !avx || got.ymm_hi[4 * r + w] == want.ymm_hi[4 * r + w];
    }
    if (!x_ok) gprintf("migrate: vcpu%u: xmm%u holds 0x%x..., expected 0x%x...\n", v, r, got.xmm[4 * r], want.xmm[4 * r]);
    if (!y_ok) gprintf("migrate: vcpu%u: ymm%u[255:128] holds 0x%x..., expected 0x%x...\n", v, r, got.ymm_hi[4 * r],
                       want.ymm_hi[4 * r]);
    bad += !x_ok + !y_ok;
  }
  for (unsigned i = 0; i < 2; i++)
    if (got.st[i] != want.st[i]) {
      gprintf("migrate: vcpu%u: x87 st(%u) holds 0x%llx, expected 0x%llx\n", v, 1 - i, got.st[i], want.st[i]);
      bad++;
    }
  if (got.mxcsr != want.mxcsr) {
    gprintf("migrate: vcpu%u: mxcsr holds 0x%x, expected 0x%x\n", v, got.mxcsr, want.mxcsr);
    bad++;
  }
  gprintf("migrate: vcpu%u: extended registers (xmm0-7%s, x87 st0-1, mxcsr): %u of %u wrong\n", v,
          avx ? ", ymm0-7[255:128]" : "", bad, avx ? 19u : 11u);
  return bad;
}

// The last pass < n that wrote cold word at `a` (kFirstPass: only the initial fill).
uint32_t last_cold_pass(uint32_t a, uint32_t n) {
  const uint32_t r = word_index(a) % kStride;
  if (n <= r) return kFirstPass;
  return r + kStride * ((n - 1 - r) / kStride);
}

// "KEY=N" (key given with its '=') from the multiboot command line, else `fallback`.
uint64_t arg_number(const char* key, uint64_t fallback) {
  const uint32_t* mbi = reinterpret_cast<const uint32_t*>(multiboot_info());
  if (!(mbi[0] & (1u << 2))) return fallback;
  const char* s = reinterpret_cast<const char*>(static_cast<uintptr_t>(mbi[4]));
  for (; *s; s++) {
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
  // The registers first: the initial fill of 3 MiB takes long enough (EPT faults, the migration's
  // copy steps) that a move due 300 ms after the start can pause the VM before it ends; loaded
  // after the fill, the registers would then be loaded in the new VM and the check would pass
  // without a restore (hv.migrate-test=lose-fpu must fail).
  const bool avx = xregs_load(v);
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
  bad += xregs_check(v, avx);
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

// --- bench=N: the dirty log's cost to the guest (tools/hv bench --guest, tools/bench_guest.py) ---
// No migration: a slot of kBenchBytes is written N passes (16 words per page, every page) with
// logging off, then N passes with the slot logged and a harvest after each pass (what a
// migration's pre-copy rounds do); the write time of both and the harvests' time and pages are
// printed for the parser ("bench: dirty ..."), with the mechanism hv chose (hv.dirty).
constexpr uint32_t kBenchSlot = 2, kBenchGpa = 0xC0000000u, kBenchBytes = 8u << 20, kBenchPages = kBenchBytes / 4096;
uint64_t g_bench_bitmap[kBenchPages / 64] __attribute__((aligned(8)));

uint64_t bench_pass(uint32_t tag) {
  const uint64_t t0 = rdtsc();
  for (uint32_t a = kBenchGpa; a < kBenchGpa + kBenchBytes; a += 256) poke32(a, tag ^ a);
  return rdtsc() - t0;
}

void bench(unsigned passes, uint32_t boot_ram, uint64_t khz) {
  CHECK_EQ(hv_slot_create(kBenchSlot, kBenchGpa, kBenchBytes, boot_ram + (4u << 20), 0), HV_OK);
  bench_pass(0x5A5A0000u);  // first touch: faulted in before either measurement
  uint64_t off = 0, on = 0, harvest_ticks = 0, harvested = 0;
  for (unsigned p = 0; p < passes; p++) off += bench_pass(p);
  const HvRet st = hv_call(HV_CALL_DIRTY_LOG_START, kBenchSlot);
  CHECK_EQ(st.status, HV_OK);
  const char* mech = st.rbx == HV_DIRTY_WP ? "wp" : st.rbx == HV_DIRTY_AD ? "ad" : st.rbx == HV_DIRTY_PML ? "pml" : "?";
  // The first harvest reports every page (logging just started): not part of the figures.
  HvRet h = hv_call(HV_CALL_DIRTY_LOG_HARVEST, kBenchSlot, reinterpret_cast<uint32_t>(g_bench_bitmap), sizeof g_bench_bitmap);
  CHECK_EQ(h.status, HV_OK);
  unsigned bad = 0;
  for (unsigned p = 0; p < passes; p++) {
    on += bench_pass(0x10000u + p);
    const uint64_t t0 = rdtsc();
    h = hv_call(HV_CALL_DIRTY_LOG_HARVEST, kBenchSlot, reinterpret_cast<uint32_t>(g_bench_bitmap), sizeof g_bench_bitmap);
    harvest_ticks += rdtsc() - t0;
    CHECK_EQ(h.status, HV_OK);
    harvested += h.rbx;
    bad += h.rbx != kBenchPages;  // every page was written in the pass
  }
  CHECK_EQ(hv_call(HV_CALL_DIRTY_LOG_STOP, kBenchSlot).status, HV_OK);
  CHECK_EQ(hv_slot_delete(kBenchSlot), HV_OK);
  gprintf("bench: dirty mechanism=%s pages=%u passes=%u off=%llu on=%llu harvest=%llu harvested=%llu short_harvests=%u "
          "tsc_khz=%llu\n",
          mech, kBenchPages, passes, off, on, harvest_ticks, harvested, bad, khz);
  CHECK_EQ(bad, 0);
  gprintf("bench: PASS\n");
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
  if (const uint64_t passes = arg_number("bench=", 0)) {
    bench(static_cast<unsigned>(passes), boot_ram, khz);
    return;
  }
  const uint64_t ms = arg_number("run-ms=", 6000);
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
