// memtouch guest, the 64-bit part: touches memory spread over its RAM so that the hypervisor's
// fault path installs both 4 KiB leaves (the first 2 MiB of guest RAM, whose host backing is
// not 2 MiB-aligned) and 2 MiB leaves (the rest), writes a pattern, runs CPUID and HLT, then
// checks every pattern and reports through the result port (0 = pass).
//
// SMP: every vCPU of the VM runs this code at once (its index and the vCPU count come from hv
// at entry). They meet at a barrier first, then all touch a *shared* slice - the same pages
// (4 KiB leaves in [1 MiB, 2 MiB)) and the same 2 MiB regions (2-6 MiB), each writing its own
// words there - so their EPT violations on the same gfns race in hv's fault path; each also
// touches its *own* slice (every count-th 2 MiB region above 6 MiB) and its own full page. After
// a second barrier ("everyone has written") each vCPU checks its own words and the other vCPUs'
// words in the shared slice: all vCPUs must see the same memory through the EPT.
//
// Result codes (bit set = check failed): 1 pattern mismatch, 2 full-page check, 4 hypervisor
// CPUID leaf signature, 8 CPUID.1 hypervisor bit / VMX bit, 16 RAM size implausible, 32 a
// misbehaviour test came back (hv should have stopped the guest), 64 no #GP from a bad WRMSR.
//
// Test modes (hv.guest=... on hv's command line, ESI at entry; hv/guest_abi.h), run after the
// normal checks: 1 write beyond the end of RAM (hv must stop the guest, not crash), 2 triple
// fault, 3 WRMSR to an MSR hv does not emulate (hv must inject #GP, which the guest catches)
// - these three on vCPU 0 only; 4 every vCPU but vCPU 0 spins forever after its writes, and
// vCPU 0 still finishes (hv must answer its flushes and stop the VM at its time limit).
#include <stddef.h>
#include <stdint.h>

namespace {

constexpr uint16_t kConsole = 0xE9;
constexpr uint64_t k4K = 4096, k2M = 2ull << 20;
constexpr uint64_t kLowStart = 1ull << 20;  // [1 MiB, 2 MiB): 4 KiB leaves
constexpr uint64_t kLowStride = 4 * k4K;    // every 4th page: 64 pages
constexpr uint64_t kPageTestAddr = 0x1F0000;  // + index * 4 KiB
constexpr uint64_t kSharedHighEnd = 6ull << 20;  // [2 MiB, 6 MiB): shared 2 MiB regions

// The VM's vCPU count (the same for every vCPU; everything per-vCPU lives on its stack).
unsigned g_count = 1;
constexpr uint64_t k1G = 1ull << 30;
constexpr uint64_t kHugeStride = 128ull << 20;  // words touched in the 1 GiB slot: one per 128 MiB

inline void outb(uint16_t port, uint8_t v) { asm volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }

void puts(const char* s) {
  while (*s) outb(kConsole, static_cast<uint8_t>(*s++));
}
// "memtouch: " with one vCPU (what the single-CPU boot tests expect), "memtouch vcpuN: " else.
void prefix(unsigned index) {
  puts("memtouch");
  if (g_count > 1) {
    puts(" vcpu");
    outb(kConsole, static_cast<uint8_t>('0' + index));
  }
  puts(": ");
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

// The addresses vCPU `index` of `count` touches: in the shared slice its own word of every
// low 4 KiB page and of the shared 2 MiB regions, then one word per 2 MiB region of its own
// (every count-th region above the shared ones, at a varying offset inside it).
template <typename F>
void for_each_addr(uint64_t ram, unsigned index, unsigned count, F f) {
  const uint64_t word = 8 + 8ull * index;
  for (uint64_t a = kLowStart; a < 2 * (1ull << 20); a += kLowStride) f(a + word);
  for (uint64_t a = k2M; a + k2M <= ram; a += k2M) {
    const bool shared = a < kSharedHighEnd;
    if (shared || ((a - kSharedHighEnd) / k2M) % count == index)
      f(a + ((a >> 21) * 0x1040 % k2M & ~7ull) + (shared ? word : 0));
  }
}

// Barriers in guest memory (all vCPUs share this .data): lock-prefixed increments, and spins
// that re-read the counter (volatile) until every vCPU has arrived.
volatile uint32_t g_arrived = 0;  // vCPUs that reached long mode
volatile uint32_t g_written = 0;  // vCPUs that wrote all their words
void arrive_and_wait(volatile uint32_t* counter, unsigned count) {
  __atomic_fetch_add(counter, 1u, __ATOMIC_SEQ_CST);
  while (__atomic_load_n(counter, __ATOMIC_SEQ_CST) < count) asm volatile("pause");
}

// Guest-physical base of a 1 GiB slot (1 GiB-aligned in guest and host memory, so hv can map
// it with one 1 GiB leaf), 0 if hv gave none. Every vCPU touches its own word of every 128 MiB
// there: the first fault installs the 1 GiB leaf, the racing ones find it.
extern "C" volatile uint64_t huge_base;

template <typename F>
void for_each_huge_addr(unsigned index, F f) {
  const uint64_t base = huge_base;
  if (base != k1G) return;  // the guest's page tables map [1 GiB, 2 GiB) only
  for (uint64_t off = 0; off < k1G; off += kHugeStride) f(base + off + 0x40 + 8ull * index);
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
    prefix(0);
    puts("writing beyond the end of RAM\n");
    *at(ram + (16ull << 20)) = 1;
    return 32;
  }
  if (mode == 2) {
    prefix(0);
    puts("triple fault\n");
    const Idtr empty{0, 0};
    asm volatile("lidt %0; ud2" ::"m"(empty));
    return 32;
  }
  if (mode == 3) {
    load_idt_with_gp_handler();
    asm volatile("wrmsr" ::"c"(0x12345678u), "a"(0u), "d"(0u));
    prefix(0);
    puts(gp_count == 1 ? "wrmsr to MSR 0x12345678 raised #GP as expected\n"
                       : "wrmsr to MSR 0x12345678 did not raise #GP\n");
    return gp_count == 1 ? 0 : 64;
  }
  return 0;
}

}  // namespace

extern "C" uint32_t guest_main(uint64_t ram, uint64_t mode, uint64_t index, uint64_t count) {
  uint32_t result = 0;
  const unsigned me = static_cast<unsigned>(index);
  g_count = count >= 1 && count <= 4 ? static_cast<unsigned>(count) : 1;
  prefix(me);
  puts("long mode, ");
  putu(ram >> 20);
  puts(" MiB RAM");
  if (g_count > 1) {
    puts(", vCPU ");
    putu(index);
    puts(" of ");
    putu(g_count);
  }
  puts("\n");
  if (ram < 8 * k2M || ram > (1ull << 30) || index >= g_count) return 16;
  arrive_and_wait(&g_arrived, g_count);

  uint64_t touched = 0;
  for_each_addr(ram, me, g_count, [&](uint64_t a) {
    *at(a) = pattern(a);
    touched++;
  });
  for_each_huge_addr(me, [&](uint64_t a) {
    *at(a) = pattern(a);
    touched++;
  });
  // A whole page, word by word.
  const uint64_t page = kPageTestAddr + index * k4K;
  for (uint64_t off = 0; off < k4K; off += 8) *at(page + off) = pattern(page + off);

  const Cpuid h = cpuid(0x40000000);
  const char* sig = "hv-tdp-mmu  ";
  uint32_t want[3];
  for (int i = 0; i < 3; i++)
    want[i] = static_cast<uint32_t>(sig[4 * i]) | static_cast<uint32_t>(sig[4 * i + 1]) << 8 |
              static_cast<uint32_t>(sig[4 * i + 2]) << 16 | static_cast<uint32_t>(sig[4 * i + 3]) << 24;
  if (h.b != want[0] || h.c != want[1] || h.d != want[2]) result |= 4;
  const Cpuid one = cpuid(1);
  if (!(one.c & (1u << 31)) || (one.c & (1u << 5))) result |= 8;
  prefix(me);
  puts("cpuid ");
  puts(result & 12 ? "unexpected" : "ok (hypervisor leaf \"hv-tdp-mmu\")");
  puts("\n");

  asm volatile("hlt" ::: "memory");

  if (mode == 4 && index != 0) {
    __atomic_fetch_add(&g_written, 1u, __ATOMIC_SEQ_CST);
    prefix(me);
    puts("spinning forever with interrupts off\n");
    // CLI: the guest's IF does not matter to external-interrupt exiting; hv must still get
    // this CPU back for every tick and IPI.
    asm volatile("cli");
    for (;;) asm volatile("" ::: "memory");
  }
  arrive_and_wait(&g_written, g_count);

  // Our own words and those of every other vCPU (the shared slice holds everyone's).
  uint64_t bad = 0, checked = 0;
  for (unsigned v = 0; v < g_count; v++) {
    for_each_addr(ram, v, g_count, [&](uint64_t a) {
      if (v != me && a >= kSharedHighEnd) return;  // another vCPU's own slice: not ours to read
      checked++;
      if (*at(a) != pattern(a)) bad++;
    });
  }
  for (unsigned v = 0; v < g_count; v++) {
    for_each_huge_addr(v, [&](uint64_t a) {
      checked++;
      if (*at(a) != pattern(a)) bad++;
    });
  }
  if (bad) result |= 1;
  uint64_t bad_words = 0;
  for (uint64_t off = 0; off < k4K; off += 8)
    if (*at(page + off) != pattern(page + off)) bad_words++;
  if (bad_words) result |= 2;

  prefix(me);
  putu(touched);
  puts(" addresses touched, ");
  if (g_count > 1) {
    putu(checked);
    puts(" checked (shared slice of all vCPUs), ");
  }
  putu(bad);
  puts(" mismatches, full page ");
  puts(bad_words ? "corrupt" : "ok");
  puts("\n");
  if (!result && index == 0) result |= misbehave(ram, mode);
  prefix(me);
  puts(result ? "FAIL\n" : "PASS\n");
  return result;
}
