// Conformance of hv's instruction emulator (hv/emulate/, docs/guest-platform.md section 5):
// every encoding in guest_emulate_cases.asm runs once on the scratch MMIO device (under hv:
// hv_abi.h HV_SCRATCH_MMIO_GPA, where every access is an EPT violation that hv emulates) and
// once on RAM (executed by the CPU), from the same initial memory, registers and flags (two
// flag inputs: all clear, all arithmetic flags set); the results - memory window, RAM
// destination of string moves, general registers (pointer registers relative to their target),
// and the flags the instruction defines - must agree. Under hv in Bochs that compares hv's
// emulator with Bochs's CPU; bare under QEMU TCG the "device" is a RAM stand-in and TCG is
// compared with itself, so a set of expected values computed here from the initial pattern is
// checked as well, on both sides. First in 32-bit protected mode (paging off), then in 64-bit
// mode (guest_emulate_cases.asm enters long mode with tables built here: identity for the first
// GiB, the device at linear 0x40100000 through a 2 MiB page of its own, so the emulator's page
// walk is exercised too), and back.
//
// Under hv it also checks that the device took every access (no unbacked read or write was
// counted) and that it caused EPT-violation exits.
#include "tests/guests/lib/guest.h"

const char guest_name[] = "emulate";

namespace {

struct Case32 {
  void (*dev)();
  void (*ram)();
  void (*alt)();
  const char* name;
  uint32_t group;
  uint32_t flagmask;
};
struct Case64 {
  uint32_t dev, ram;
  const char* name;
  uint32_t group_flags;  // group | flagmask << 8
};
struct Regs32 {
  uint32_t eax, ebx, ecx, edx, esi, edi, ebp, eflags;
};

constexpr uint32_t kRamArea = 0x1C00000, kAltArea = 0x1F00000, kRamSrc = 0x1D00000, kRamDst = 0x1D01000;
constexpr uint32_t kBaseOff = 0xFF0, kWinBefore = 0x40, kWinBytes = 0xC0, kDstBytes = 0x40;
constexpr uint64_t kDev64 = 0x40100000 + kBaseOff;
constexpr uint32_t kSlot64 = 17 * 8 + kWinBytes + kDstBytes;
constexpr uint32_t kArith = 0x8D5, kDf = 0x400;

const char* const kGroups[] = {"mov", "movzx/movsx", "alu", "test", "not/neg/inc/dec", "lock/xchg/xadd/cmpxchg", "bt", "string", "rip-relative"};
constexpr unsigned kGroupCount = sizeof kGroups / sizeof kGroups[0];

}  // namespace

extern "C" {
extern const Case32 emu_cases32[];
extern const Case32 emu_cases32_end[];
extern const Case64 emu_cases64[];
extern const uint32_t emu_cases64_count;
extern const uint8_t emu_pattern[];
extern uint8_t emu_results64[];
uint32_t emu_run32(void (*fn)(), Regs32* r);
void emu_run64_all(uint32_t cr3);
}

namespace {

unsigned g_total[kGroupCount], g_bad[kGroupCount];
unsigned g_reports;

struct Run32 {
  Regs32 r;
  uint8_t win[kWinBytes];
  uint8_t dst[kDstBytes];
};

void fill_window(uint32_t base) {
  volatile uint32_t* w = reinterpret_cast<volatile uint32_t*>(base - kWinBefore);
  for (uint32_t k = 0; k < kWinBytes / 4; k++) {
    uint32_t v = 0;
    for (unsigned b = 0; b < 4; b++) v |= static_cast<uint32_t>(emu_pattern[4 * k + b]) << (8 * b);
    w[k] = v;
  }
  volatile uint32_t* d = reinterpret_cast<volatile uint32_t*>(kRamDst);
  for (uint32_t k = 0; k < kDstBytes / 4; k++) d[k] = 0;
}

void read_window(uint32_t base, uint8_t* win, uint8_t* dst) {
  volatile uint32_t* w = reinterpret_cast<volatile uint32_t*>(base - kWinBefore);
  for (uint32_t k = 0; k < kWinBytes / 4; k++) {
    const uint32_t v = w[k];
    for (unsigned b = 0; b < 4; b++) win[4 * k + b] = static_cast<uint8_t>(v >> (8 * b));
  }
  memcpy(dst, reinterpret_cast<const void*>(kRamDst), kDstBytes);
}

void run32(void (*fn)(), uint32_t base, uint32_t flags, Run32* out) {
  fill_window(base);
  out->r = Regs32{0x89ABCDEF, base, 3, 0xF00DFACE, base + 0x20, base + 0x40, base, flags};
  emu_run32(fn, &out->r);
  read_window(base, out->win, out->dst);
}

uint32_t pat32(unsigned off) {
  uint32_t v = 0;
  for (unsigned b = 0; b < 4; b++) v |= static_cast<uint32_t>(emu_pattern[off + b]) << (8 * b);
  return v;
}
uint64_t pat64(unsigned off) { return pat32(off) | static_cast<uint64_t>(pat32(off + 4)) << 32; }
uint32_t win32(const uint8_t* win, unsigned off) {
  uint32_t v = 0;
  for (unsigned b = 0; b < 4; b++) v |= static_cast<uint32_t>(win[off + b]) << (8 * b);
  return v;
}

bool same_name(const char* a, const char* b) {
  while (*a && *a == *b) a++, b++;
  return *a == *b;
}

void mismatch(const char* mode, const char* name, uint32_t flags, const char* what, uint64_t dev, uint64_t ram) {
  if (g_reports++ < 12)
    gprintf("emulate: MISMATCH %s \"%s\" (flags in 0x%x): %s: device 0x%llx, RAM 0x%llx\n", mode, name, flags, what, dev,
            ram);
}

// Expected values computed from the pattern (the same on both sides: checks bare TCG too).
unsigned check_expected32(const Case32& c, uint32_t flags, const Run32& d, uint32_t base) {
  const char* n = c.name;
  unsigned bad = 0;
  auto expect = [&](bool ok, const char* what) {
    note_check();
    if (!ok) {
      bad++;
      gprintf("emulate: 32-bit \"%s\" (flags in 0x%x): expected %s\n", n, flags, what);
    }
  };
  if (same_name(n, "mov eax,[ebp]")) expect(d.r.eax == pat32(0x40), "eax = the pattern at base");
  if (same_name(n, "mov eax,[ebp+0xe] (crosses the page)")) expect(d.r.eax == pat32(0x4E), "eax = the pattern at base+0xe");
  if (same_name(n, "mov ah,[ebx+2]")) expect(d.r.eax == ((0x89AB00EFu) | (emu_pattern[0x42] << 8)), "AH replaced only");
  if (same_name(n, "movsx eax,byte [ebp+1]"))
    expect(d.r.eax == static_cast<uint32_t>(static_cast<int8_t>(emu_pattern[0x41])), "sign-extended byte");
  if (same_name(n, "mov [ebp+0xd],edx (crosses)")) expect(win32(d.win, 0x4D) == 0xF00DFACE, "edx stored across the page");
  if (same_name(n, "xchg [ebp],eax")) expect(d.r.eax == pat32(0x40) && win32(d.win, 0x40) == 0x89ABCDEF, "swapped");
  if (same_name(n, "add [ebp+4] / eax")) {
    const uint32_t sum = pat32(0x44) + 0x89ABCDEF;
    expect(win32(d.win, 0x44) == sum, "the sum in memory");
    expect(((d.r.eflags & 1) != 0) == (sum < pat32(0x44)), "CF = carry of the sum");
  }
  if (same_name(n, "lock cmpxchg [ebx+0xe],edx (equal, crosses)"))
    expect(win32(d.win, 0x4E) == 0xF00DFACE && (d.r.eflags & 0x40), "edx stored and ZF set");
  if (same_name(n, "bts dword [ebx+4],31")) {
    expect(win32(d.win, 0x44) == (pat32(0x44) | 0x80000000u), "bit 31 set");
    expect((d.r.eflags & 1) == (pat32(0x44) >> 31), "CF = the old bit");
  }
  if (same_name(n, "rep movsb (RAM to device, crosses)")) {
    bool ok = d.r.ecx == 0 && d.r.esi == kRamSrc + 0x40 && d.r.edi == base + 0x20;
    for (unsigned k = 0; k < 0x40; k++) ok = ok && d.win[0x20 + k] == static_cast<uint8_t>(k * 3 + 0xA0);
    expect(ok, "the RAM source in the window, ECX 0, pointers advanced");
  }
  if (same_name(n, "rep movsd (device to RAM, crosses)")) {
    bool ok = d.r.ecx == 0;
    for (unsigned k = 0; k < 0x20; k++) ok = ok && d.dst[k] == emu_pattern[0x38 + k];
    expect(ok, "the window's bytes in RAM");
  }
  return bad;
}

void run_32bit(uint32_t dev_area, bool hv) {
  const uint32_t dev_base = dev_area + kBaseOff, ram_base = kRamArea + kBaseOff;
  static Run32 d, r;
  for (const Case32* c = emu_cases32; c < emu_cases32_end; c++) {
    bool ok = true;
    static constexpr uint32_t kFlagInputs[2] = {0x002, 0x8D7};
    for (uint32_t flags : kFlagInputs) {
      run32(hv ? c->dev : c->alt, dev_base, flags, &d);
      run32(c->ram, ram_base, flags, &r);
      const uint32_t* dv = &d.r.eax;
      const uint32_t* rv = &r.r.eax;
      static const char* const names[7] = {"eax", "ebx", "ecx", "edx", "esi", "edi", "ebp"};
      for (unsigned k = 0; k < 7; k++) {
        note_check();
        if (dv[k] != rv[k] && dv[k] - dev_base != rv[k] - ram_base) {
          ok = false;
          mismatch("32-bit", c->name, flags, names[k], dv[k], rv[k]);
        }
      }
      const uint32_t mask = (c->flagmask ? c->flagmask : kArith) | kDf;
      note_check();
      if ((d.r.eflags ^ r.r.eflags) & mask) {
        ok = false;
        mismatch("32-bit", c->name, flags, "eflags", d.r.eflags, r.r.eflags);
      }
      for (unsigned k = 0; k < kWinBytes; k++) {
        if (d.win[k] != r.win[k]) {
          ok = false;
          mismatch("32-bit", c->name, flags, "window byte (offset from base + 0x40)", k, (uint64_t{d.win[k]} << 8) | r.win[k]);
          break;
        }
      }
      for (unsigned k = 0; k < kDstBytes; k++) {
        if (d.dst[k] != r.dst[k]) {
          ok = false;
          mismatch("32-bit", c->name, flags, "RAM destination byte", k, (uint64_t{d.dst[k]} << 8) | r.dst[k]);
          break;
        }
      }
      note_check();
      if (check_expected32(*c, flags, d, dev_base)) ok = false;
    }
    g_total[c->group]++;
    if (!ok) g_bad[c->group]++;
  }
}

// 4-level tables for the 64-bit part: the first GiB identity-mapped with 2 MiB pages, and
// linear 0x40000000 -> the 2 MiB page that holds the device (bare: its stand-in).
alignas(4096) uint64_t g_pml4[512], g_pdpt[512], g_pd0[512], g_pd1[512];

unsigned check_expected64(const Case64& c, uint32_t flags, const uint64_t* g) {
  const char* n = c.name;
  unsigned bad = 0;
  auto expect = [&](bool ok, const char* what) {
    note_check();
    if (!ok) {
      bad++;
      gprintf("emulate: 64-bit \"%s\" (flags in 0x%x): expected %s\n", n, flags, what);
    }
  };
  if (same_name(n, "mov rax,[rbp]") || same_name(n, "mov rax,[rip+TGT]") || same_name(n, "mov rax,[moffs64]"))
    expect(g[0] == pat64(0x40), "rax = the pattern at base");
  if (same_name(n, "mov rax,[rbx+0xc] (crosses)")) expect(g[0] == pat64(0x4C), "rax = the pattern at base+0xc");
  if (same_name(n, "mov sil,[rbx+3] (REX: SIL)"))
    expect((g[6] & 0xFF) == emu_pattern[0x43] && g[0] == 0x0123456789ABCDEFull, "SIL loaded, RAX untouched");
  if (same_name(n, "mov ah,[rbx+2] (no REX: AH)"))
    expect(g[0] == (0x0123456789AB00EFull | (uint64_t{emu_pattern[0x42]} << 8)), "AH replaced only");
  if (same_name(n, "mov r11d,[rbx+4] (zero-extends)")) expect(g[11] == pat32(0x44), "r11 zero-extended");
  if (same_name(n, "movsxd rdx,dword [rbx+4]"))
    expect(g[2] == static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(pat32(0x44)))), "sign-extended dword");
  return bad;
}

void run_64bit(bool hv) {
  for (unsigned i = 0; i < 512; i++) g_pd0[i] = (static_cast<uint64_t>(i) << 21) | 0x83;  // P RW PS
  g_pd1[0] = (hv ? (HV_SCRATCH_MMIO_GPA & ~0x1FFFFFu) : (kAltArea & ~0x1FFFFFu)) | 0x83;
  g_pdpt[0] = reinterpret_cast<uint32_t>(g_pd0) | 3;
  g_pdpt[1] = reinterpret_cast<uint32_t>(g_pd1) | 3;
  g_pml4[0] = reinterpret_cast<uint32_t>(g_pdpt) | 3;
  emu_run64_all(reinterpret_cast<uint32_t>(g_pml4));
  static const char* const names[16] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                        "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};
  const uint64_t ram_base = kRamArea + kBaseOff;
  for (uint32_t i = 0; i < emu_cases64_count; i++) {
    const Case64& c = emu_cases64[i];
    const uint32_t group = c.group_flags & 0xFF, fmask = c.group_flags >> 8;
    bool ok = true;
    for (unsigned f = 0; f < 2; f++) {
      const uint32_t flags = f ? 0x8D7 : 0x002;
      const uint64_t* d = reinterpret_cast<const uint64_t*>(emu_results64 + (i * 4 + f) * kSlot64);
      const uint64_t* r = reinterpret_cast<const uint64_t*>(emu_results64 + (i * 4 + 2 + f) * kSlot64);
      for (unsigned k = 0; k < 16; k++) {
        if (k == 4) continue;
        note_check();
        if (d[k] != r[k] && d[k] - kDev64 != r[k] - ram_base) {
          ok = false;
          mismatch("64-bit", c.name, flags, names[k], d[k], r[k]);
        }
      }
      const uint64_t mask = (fmask ? fmask : kArith) | kDf;
      note_check();
      if ((d[16] ^ r[16]) & mask) {
        ok = false;
        mismatch("64-bit", c.name, flags, "rflags", d[16], r[16]);
      }
      const uint8_t* dw = reinterpret_cast<const uint8_t*>(d + 17);
      const uint8_t* rw = reinterpret_cast<const uint8_t*>(r + 17);
      for (unsigned k = 0; k < kWinBytes + kDstBytes; k++) {
        if (dw[k] != rw[k]) {
          ok = false;
          mismatch("64-bit", c.name, flags, k < kWinBytes ? "window byte" : "RAM destination byte", k,
                   (uint64_t{dw[k]} << 8) | rw[k]);
          break;
        }
      }
      if (check_expected64(c, flags, d)) ok = false;
    }
    g_total[group]++;
    if (!ok) g_bad[group]++;
  }
}

// Every vCPU increments a counter and adds to a second one on the device with LOCK'd
// instructions at the same time: hv emulates each one as one read and one write under the
// VM's MMIO bus lock, so no increment may be lost (docs/guest-platform.md section 5).
constexpr unsigned kHammer = 1500;
uint32_t g_counter_addr;

void hammer(unsigned) {
  volatile uint32_t* c = reinterpret_cast<volatile uint32_t*>(g_counter_addr);
  for (unsigned k = 0; k < kHammer; k++) {
    asm volatile("lock incl %0" : "+m"(c[0])::"memory");
    uint32_t add = 3;
    asm volatile("lock xaddl %1, %0" : "+m"(c[1]), "+r"(add)::"memory");
  }
}

void run_smp(uint32_t dev_area) {
  g_counter_addr = dev_area + 0x1FF8;
  volatile uint32_t* c = reinterpret_cast<volatile uint32_t*>(g_counter_addr);
  c[0] = 0;
  c[1] = 0;
  const unsigned n = vcpu_count();
  smp_start(hammer);
  hammer(0);
  smp_wait_done();
  // Plain loads into locals: the compiler would otherwise pass them to gprintf with PUSH [mem],
  // which the emulator does not know.
  const uint32_t inc = c[0], xadd = c[1];
  CHECK_EQ(inc, n * kHammer);
  CHECK_EQ(xadd, 3 * n * kHammer);
  gprintf("emulate: %u vCPU(s) x %u lock inc + lock xadd on the device: counters %u and %u\n", n, kHammer, inc, xadd);
}

}  // namespace

void guest_test() {
  if (ram_top() < kAltArea + 0x100000) skip("needs 32 MiB of RAM");
  const bool hv = under_hv();
  const uint32_t dev_area = hv ? HV_SCRATCH_MMIO_GPA : kAltArea;
  gprintf("emulate: %s at 0x%x (%s)\n", hv ? "scratch MMIO device" : "RAM stand-in for the device", dev_area,
          hv ? "under hv: every access emulated" : "bare: no hv");
  for (unsigned k = 0; k < 0x40; k++) reinterpret_cast<volatile uint8_t*>(kRamSrc)[k] = static_cast<uint8_t>(k * 3 + 0xA0);
  uint64_t ept0 = 0, ur0 = 0, uw0 = 0;
  if (hv) {
    // The device behaves like RAM (unbacked memory would read all ones).
    volatile uint32_t* dev = reinterpret_cast<volatile uint32_t*>(HV_SCRATCH_MMIO_GPA);
    dev[0] = 0x12345678;
    dev[2047] = 0x9ABCDEF0;
    CHECK_EQ(dev[0], 0x12345678u);
    CHECK_EQ(dev[2047], 0x9ABCDEF0u);
    ept0 = hv_stat(HV_STAT_EXITS_EPT);
    ur0 = hv_stat(HV_STAT_UNBACKED_READS);
    uw0 = hv_stat(HV_STAT_UNBACKED_WRITES);
  }
  run_32bit(dev_area, hv);
  run_64bit(hv);
  run_smp(dev_area);
  unsigned encodings = 0, bad = 0;
  for (unsigned g = 0; g < kGroupCount; g++) {
    encodings += g_total[g];
    bad += g_bad[g];
    if (g_bad[g]) gprintf("emulate: %s: %u encodings, %u FAILED\n", kGroups[g], g_total[g], g_bad[g]);
    else gprintf("emulate: %s: %u encodings ok\n", kGroups[g], g_total[g]);
  }
  CHECK_EQ(bad, 0);
  gprintf("emulate: %u encodings (%u in 32-bit code, %u in 64-bit code), each with 2 flag inputs: %u mismatches\n", encodings,
          static_cast<unsigned>(emu_cases32_end - emu_cases32), emu_cases64_count, bad);
  if (hv) {
    const uint64_t ept = hv_stat(HV_STAT_EXITS_EPT) - ept0;
    const uint64_t ur = hv_stat(HV_STAT_UNBACKED_READS) - ur0, uw = hv_stat(HV_STAT_UNBACKED_WRITES) - uw0;
    CHECK(ept >= 4 * encodings);
    CHECK_EQ(ur, 0);
    CHECK_EQ(uw, 0);
    gprintf("emulate: hv: %llu EPT-violation exits, %llu unbacked reads, %llu unbacked writes\n", ept, ur, uw);
  }
}
