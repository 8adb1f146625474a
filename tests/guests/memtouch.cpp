// memtouch guest, the 64-bit part: touches memory spread over its RAM so that the hypervisor's
// fault path installs both 4 KiB leaves (the first 2 MiB of guest RAM, whose host backing is
// not 2 MiB-aligned) and 2 MiB leaves (the rest), writes a pattern, runs CPUID and HLT, then
// checks every pattern and reports through the result port (0 = pass).
//
// Result codes (bit set = check failed): 1 pattern mismatch, 2 full-page check, 4 hypervisor
// CPUID leaf signature, 8 CPUID.1 hypervisor bit / VMX bit, 16 RAM size implausible, 32 a
// misbehaviour test came back (hv should have stopped the guest), 64 no #GP from a bad WRMSR.
//
// Test modes (hv.guest=... on hv's command line, ESI at entry; hv/guest_abi.h), run after the
// normal checks: 1 write beyond the end of RAM (hv must stop the guest, not crash), 2 triple
// fault, 3 WRMSR to an MSR hv does not emulate (hv must inject #GP, which the guest catches).
#include <stddef.h>
#include <stdint.h>

namespace {

constexpr uint16_t kConsole = 0xE9;
constexpr uint64_t k4K = 4096, k2M = 2ull << 20;
constexpr uint64_t kLowStart = 1ull << 20;  // [1 MiB, 2 MiB): 4 KiB leaves
constexpr uint64_t kLowStride = 4 * k4K;    // every 4th page: 64 pages
constexpr uint64_t kPageTestAddr = 0x1F0000;

inline void outb(uint16_t port, uint8_t v) { asm volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }

void puts(const char* s) {
  while (*s) outb(kConsole, static_cast<uint8_t>(*s++));
}
void putu(uint64_t v) {
  char buf[24];
  int n = 0;
  do {
    buf[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) outb(kConsole, static_cast<uint8_t>(buf[--n]));
}

struct Cpuid {
  uint32_t a, b, c, d;
};
Cpuid cpuid(uint32_t leaf) {
  Cpuid r;
  asm volatile("cpuid" : "=a"(r.a), "=b"(r.b), "=c"(r.c), "=d"(r.d) : "a"(leaf), "c"(0));
  return r;
}

// A value that depends on the address, so that a page mapped to the wrong frame (or two
// guest pages aliased onto one) shows up as a mismatch.
uint64_t pattern(uint64_t addr) {
  uint64_t x = addr * 0x9E3779B97F4A7C15ull;
  return x ^ (x >> 29) ^ 0x6D656D746F756368ull;
}

volatile uint64_t* at(uint64_t addr) { return reinterpret_cast<volatile uint64_t*>(addr); }

// The addresses touched: low 4 KiB pages, then one word per 2 MiB region (at a varying offset
// inside it) up to the end of RAM.
template <typename F>
void for_each_addr(uint64_t ram, F f) {
  for (uint64_t a = kLowStart; a < 2 * (1ull << 20); a += kLowStride) f(a + 8);
  for (uint64_t a = k2M; a + k2M <= ram; a += k2M) f(a + ((a >> 21) * 0x1040 % k2M & ~7ull));
}

extern "C" void gp_handler();
extern "C" volatile uint32_t gp_count;

struct [[gnu::packed]] Idtr {
  uint16_t limit;
  uint64_t base;
};
struct Gate {
  uint64_t lo, hi;
};
alignas(16) Gate g_idt[32];

void load_idt_with_gp_handler() {
  const uint64_t h = reinterpret_cast<uint64_t>(&gp_handler);
  // 64-bit interrupt gate: offset 15:0, selector 0x08, type 0xE, present, offset 63:16.
  g_idt[13].lo = (h & 0xFFFF) | (0x08ull << 16) | (0x8Eull << 40) | (((h >> 16) & 0xFFFF) << 48);
  g_idt[13].hi = h >> 32;
  const Idtr idtr{sizeof g_idt - 1, reinterpret_cast<uint64_t>(g_idt)};
  asm volatile("lidt %0" ::"m"(idtr));
}

uint32_t misbehave(uint64_t ram, uint64_t mode) {
  if (mode == 1) {
    puts("memtouch: writing beyond the end of RAM\n");
    *at(ram + (16ull << 20)) = 1;
    return 32;
  }
  if (mode == 2) {
    puts("memtouch: triple fault\n");
    const Idtr empty{0, 0};
    asm volatile("lidt %0; ud2" ::"m"(empty));
    return 32;
  }
  if (mode == 3) {
    load_idt_with_gp_handler();
    asm volatile("wrmsr" ::"c"(0x12345678u), "a"(0u), "d"(0u));
    puts(gp_count == 1 ? "memtouch: wrmsr to MSR 0x12345678 raised #GP as expected\n"
                       : "memtouch: wrmsr to MSR 0x12345678 did not raise #GP\n");
    return gp_count == 1 ? 0 : 64;
  }
  return 0;
}

}  // namespace

extern "C" uint32_t guest_main(uint64_t ram, uint64_t mode) {
  uint32_t result = 0;
  puts("memtouch: long mode, ");
  putu(ram >> 20);
  puts(" MiB RAM\n");
  if (ram < 8 * k2M || ram > (1ull << 30)) return 16;

  uint64_t touched = 0;
  for_each_addr(ram, [&](uint64_t a) {
    *at(a) = pattern(a);
    touched++;
  });
  // A whole page, word by word.
  for (uint64_t off = 0; off < k4K; off += 8) *at(kPageTestAddr + off) = pattern(kPageTestAddr + off);

  const Cpuid h = cpuid(0x40000000);
  const char* sig = "hv-tdp-mmu  ";
  uint32_t want[3];
  for (int i = 0; i < 3; i++)
    want[i] = static_cast<uint32_t>(sig[4 * i]) | static_cast<uint32_t>(sig[4 * i + 1]) << 8 |
              static_cast<uint32_t>(sig[4 * i + 2]) << 16 | static_cast<uint32_t>(sig[4 * i + 3]) << 24;
  if (h.b != want[0] || h.c != want[1] || h.d != want[2]) result |= 4;
  const Cpuid one = cpuid(1);
  if (!(one.c & (1u << 31)) || (one.c & (1u << 5))) result |= 8;
  puts("memtouch: cpuid ");
  puts(result & 12 ? "unexpected" : "ok (hypervisor leaf \"hv-tdp-mmu\")");
  puts("\n");

  asm volatile("hlt" ::: "memory");

  uint64_t bad = 0;
  for_each_addr(ram, [&](uint64_t a) {
    if (*at(a) != pattern(a)) bad++;
  });
  if (bad) result |= 1;
  uint64_t bad_words = 0;
  for (uint64_t off = 0; off < k4K; off += 8)
    if (*at(kPageTestAddr + off) != pattern(kPageTestAddr + off)) bad_words++;
  if (bad_words) result |= 2;

  puts("memtouch: ");
  putu(touched);
  puts(" addresses touched, ");
  putu(bad);
  puts(" mismatches, full page ");
  puts(bad_words ? "corrupt" : "ok");
  puts("\n");
  if (!result) result |= misbehave(ram, mode);
  puts(result ? "memtouch: FAIL\n" : "memtouch: PASS\n");
  return result;
}
