// guest-lowload: a multiboot v1 kernel loaded low, at 0x8000 (guest-lowload-7000: at 0x7000;
// see CMakeLists.txt here). It checks
// what a loader must get right for such an image: the boot magic, that the information, the
// memory map and the command line lie outside the image, and that the image itself arrived
// intact (the header at 0x8000 and a word in .data). Bare under QEMU TCG and under hv it must
// say the same. Output on COM1; the verdict also goes to port 0xF4 (0 pass, 1 fail).
#include <stdint.h>

extern "C" char __image_start[], __bss_end[];

namespace {

constexpr uint16_t kCom1 = 0x3F8;

void outb(uint16_t port, uint8_t v) { asm volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
uint8_t inb(uint16_t port) {
  uint8_t v;
  asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}

void putc(char c) {
  for (unsigned i = 0; i < 100000 && !(inb(kCom1 + 5) & 0x20); i++) {
  }
  outb(kCom1, static_cast<uint8_t>(c));
}
void puts(const char* s) {
  while (*s) putc(*s++);
}
void puthex(uint32_t v) {
  puts("0x");
  bool started = false;
  for (int i = 28; i >= 0; i -= 4) {
    const unsigned d = (v >> i) & 15;
    if (d || started || i == 0) {
      putc("0123456789abcdef"[d]);
      started = true;
    }
  }
}

unsigned g_checks, g_failures;
void check(bool ok, const char* what) {
  g_checks++;
  if (ok) return;
  g_failures++;
  puts("lowload: check failed: ");
  puts(what);
  puts("\n");
}

bool outside_image(uint32_t start, uint32_t len) {
  const uint32_t is = reinterpret_cast<uint32_t>(__image_start), ie = reinterpret_cast<uint32_t>(__bss_end);
  return start + len <= is || start >= ie;
}

uint32_t rd32(uint32_t addr) { return *reinterpret_cast<const volatile uint32_t*>(addr); }

}  // namespace

// In .data: its value must be what the image says, whatever the loader wrote around it.
volatile uint32_t g_canary = 0x10AD10ADu;

extern "C" [[noreturn]] void lowload_main(uint32_t magic, uint32_t info) {
  outb(kCom1 + 1, 0x00);
  outb(kCom1 + 3, 0x80);
  outb(kCom1 + 0, 0x01);
  outb(kCom1 + 1, 0x00);
  outb(kCom1 + 3, 0x03);
  puts("lowload: image [");
  puthex(reinterpret_cast<uint32_t>(__image_start));
  puts(", ");
  puthex(reinterpret_cast<uint32_t>(__bss_end));
  puts("), multiboot information at ");
  puthex(info);
  puts("\n");
  check(magic == 0x2BADB002u, "boot magic 0x2BADB002 in EAX");
  check(reinterpret_cast<uint32_t>(__image_start) + 0x1000 <= 0x9F000, "image below 640 KiB");
  check(rd32(reinterpret_cast<uint32_t>(__image_start)) == 0x1BADB002u, "the multiboot header intact at the image's start");
  check(g_canary == 0x10AD10ADu, ".data intact");
  if (magic == 0x2BADB002u) {
    const uint32_t flags = rd32(info);
    puts("lowload: flags ");
    puthex(flags);
    if (flags & 1) {
      puts(", mem_lower ");
      puthex(rd32(info + 4));
      puts(" KiB, mem_upper ");
      puthex(rd32(info + 8));
      puts(" KiB");
    }
    puts("\n");
    check(outside_image(info, 116), "information outside the image");
    check(flags & 1, "memory information (flags bit 0)");
    check(flags & (1u << 6), "memory map (flags bit 6)");
    if (flags & (1u << 6)) check(outside_image(rd32(info + 48), rd32(info + 44)), "memory map outside the image");
    if (flags & 1) check(rd32(info + 8) >= 1024, "at least 1 MiB above 1 MiB");
    if (flags & (1u << 2)) {
      const char* cl = reinterpret_cast<const char*>(rd32(info + 16));
      uint32_t n = 0;
      while (cl[n]) n++;
      check(outside_image(rd32(info + 16), n + 1), "command line outside the image");
    }
  }
  if (g_failures) {
    puts("lowload: FAIL\n");
  } else {
    puts("lowload: PASS (");
    puthex(g_checks);
    puts(" checks)\n");
  }
  asm volatile("outl %0, %1" : : "a"(g_failures ? 1u : 0u), "Nd"(uint16_t{0xF4}));
  for (;;) asm volatile("cli; hlt");
}
