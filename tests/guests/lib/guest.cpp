// The test-guest library (see guest.h).
#include "tests/guests/lib/guest.h"

#include <stdarg.h>

namespace {

constexpr uint16_t kCom1 = 0x3F8, kExitPort = 0xF4;
constexpr uint32_t kBootMagic = 0x2BADB002;

unsigned g_checks = 0, g_failures = 0;
uint32_t g_ram_top = 0;
uint32_t g_mb_info = 0;

void serial_init() {
  outb(kCom1 + 1, 0x00);  // no interrupts
  outb(kCom1 + 3, 0x80);  // DLAB: divisor follows
  outb(kCom1 + 0, 0x01);  // 115200 baud
  outb(kCom1 + 1, 0x00);
  outb(kCom1 + 3, 0x03);  // 8N1
  outb(kCom1 + 2, 0xC7);  // FIFOs on and cleared
  outb(kCom1 + 4, 0x03);  // DTR, RTS
}

void serial_putc(char c) {
  for (unsigned i = 0; i < 100000 && !(inb(kCom1 + 5) & 0x20); i++) {
  }
  outb(kCom1, static_cast<uint8_t>(c));
}

void put_num(uint64_t v, unsigned base, bool neg) {
  char buf[24];
  int n = 0;
  do {
    const uint64_t q = div64(v, base);
    buf[n++] = "0123456789abcdef"[v - q * base];
    v = q;
  } while (v);
  if (neg) serial_putc('-');
  while (n) serial_putc(buf[--n]);
}

void vprint(const char* f, va_list ap) {
  for (; *f; f++) {
    if (*f != '%') {
      serial_putc(*f);
      continue;
    }
    f++;
    int longs = 0;
    while (*f == 'l') {
      longs++;
      f++;
    }
    switch (*f) {
      case 'd': {
        const int64_t v = longs >= 2 ? va_arg(ap, long long) : longs ? va_arg(ap, long) : va_arg(ap, int);
        put_num(v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v), 10, v < 0);
        break;
      }
      case 'u':
      case 'x': {
        const uint64_t v = longs >= 2 ? va_arg(ap, unsigned long long) : longs ? va_arg(ap, unsigned long) : va_arg(ap, unsigned);
        put_num(v, *f == 'x' ? 16 : 10, false);
        break;
      }
      case 'p':
        serial_putc('0');
        serial_putc('x');
        put_num(reinterpret_cast<uintptr_t>(va_arg(ap, void*)), 16, false);
        break;
      case 's': {
        const char* s = va_arg(ap, const char*);
        for (s = s ? s : "(null)"; *s; s++) serial_putc(*s);
        break;
      }
      case 'c': serial_putc(static_cast<char>(va_arg(ap, int))); break;
      case '%': serial_putc('%'); break;
      default: serial_putc('?'); break;
    }
  }
}

// One vCPU prints at a time (the UART has one transmit register, and hv collects a line per
// VM). A plain test-and-set lock: output is rare and short.
uint32_t g_print_lock = 0;
void print_lock() {
  while (__atomic_exchange_n(&g_print_lock, 1, __ATOMIC_ACQUIRE)) asm volatile("pause");
}
void print_unlock() { __atomic_store_n(&g_print_lock, 0, __ATOMIC_RELEASE); }

}  // namespace

// Shift and subtract, one quotient bit per step.
uint64_t div64(uint64_t n, uint64_t d) {
  if (!d) return 0;
  uint64_t q = 0, r = 0;
  for (int i = 63; i >= 0; i--) {
    r = (r << 1) | ((n >> i) & 1);
    if (r >= d) {
      r -= d;
      q |= uint64_t{1} << i;
    }
  }
  return q;
}

void gprintf(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  print_lock();
  vprint(fmt, ap);
  print_unlock();
  va_end(ap);
}

void gputs(const char* s) {
  print_lock();
  for (; *s; s++) serial_putc(*s);
  serial_putc('\n');
  print_unlock();
}

// Atomic: several vCPUs check at once (smp.cpp).
void note_check() { __atomic_fetch_add(&g_checks, 1, __ATOMIC_RELAXED); }
unsigned checks_done() { return __atomic_load_n(&g_checks, __ATOMIC_RELAXED); }
unsigned checks_failed() { return __atomic_load_n(&g_failures, __ATOMIC_RELAXED); }

void check_group(const char* name, unsigned failed_before) {
  gprintf("%s: %s: %s\n", guest_name, name, checks_failed() == failed_before ? "ok" : "FAILED");
}

void check_failed(const char* file, int line, const char* what) {
  __atomic_fetch_add(&g_failures, 1, __ATOMIC_RELAXED);
  if (file) gprintf("%s: check failed at %s:%d: %s\n", guest_name, file, line, what);
}

void outb(uint16_t port, uint8_t v) { asm volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
uint8_t inb(uint16_t port) {
  uint8_t v;
  asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}

unsigned (*guest_exit_hook)(unsigned status) = nullptr;

void guest_exit(unsigned status) {
  if (guest_exit_hook) status = guest_exit_hook(status);
  // A 32-bit OUT, as isa-debug-exit (iosize 4) and hv both take it.
  asm volatile("outl %0, %1" : : "a"(status), "Nd"(kExitPort));
  for (;;) asm volatile("cli; hlt");
}

void skip(const char* why) {
  gprintf("%s: SKIP: %s\n", guest_name, why);
  guest_exit(0);
}

bool under_hv() {
  uint32_t a, b, c, d;
  asm volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
  if (!(c & (1u << 31))) return false;
  asm volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x40000000), "c"(0));
  // "hv-tdp-mmu  " in EBX, ECX, EDX (hv/guest_abi.h).
  return b == 0x742D7668 && c == 0x6D2D7064 && d == 0x2020756D;
}

void require_hv() {
  if (!under_hv()) skip("not under hv");
}

uint32_t ram_top() { return g_ram_top; }
uint32_t multiboot_info() { return g_mb_info; }

// Whether the word `w` is among the multiboot arguments (after the module's name).
bool has_arg(const char* w) {
  const uint32_t* mbi = reinterpret_cast<const uint32_t*>(multiboot_info());
  if (!(mbi[0] & (1u << 2))) return false;
  const char* p = reinterpret_cast<const char*>(mbi[4]);
  while (*p && *p != ' ') p++;
  while (*p) {
    while (*p == ' ') p++;
    const char* a = p;
    while (*p && *p != ' ') p++;
    unsigned i = 0;
    while (a + i < p && w[i] && a[i] == w[i]) i++;
    if (a + i == p && !w[i]) return true;
  }
  return false;
}

uint32_t peek32(uint32_t addr) {
  uint32_t v;
  asm volatile("movl (%1), %0" : "=r"(v) : "r"(addr) : "memory");
  return v;
}
void poke32(uint32_t addr, uint32_t v) { asm volatile("movl %0, (%1)" : : "r"(v), "r"(addr) : "memory"); }
uint8_t peek8(uint32_t addr) {
  uint8_t v;
  asm volatile("movb (%1), %0" : "=q"(v) : "r"(addr) : "memory");
  return v;
}

HvRet hv_call(uint32_t nr, uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t a4) {
  HvRet r;
  uint32_t si = a3, di = a4;
  asm volatile("vmcall"
               : "=a"(r.status), "=b"(r.rbx), "=c"(r.rcx), "=d"(r.rdx), "+S"(si), "+D"(di)
               : "a"(nr), "b"(a0), "c"(a1), "d"(a2)
               : "memory");
  return r;
}

uint64_t hv_stat(unsigned counter) {
  const HvRet r = hv_call(HV_CALL_STAT, counter);
  CHECK_EQ(r.status, HV_OK);
  return (static_cast<uint64_t>(r.rcx) << 32) | r.rbx;
}

int32_t hv_slot_create(uint32_t id, uint32_t gpa, uint32_t bytes, uint32_t off, uint32_t flags) {
  return hv_call(HV_CALL_MEMSLOT_CREATE, id, gpa, bytes, off, flags).status;
}
int32_t hv_slot_delete(uint32_t id) { return hv_call(HV_CALL_MEMSLOT_DELETE, id).status; }
int32_t hv_slot_move(uint32_t id, uint32_t gpa) { return hv_call(HV_CALL_MEMSLOT_MOVE, id, gpa).status; }
int32_t hv_slot_flags(uint32_t id, uint32_t flags) { return hv_call(HV_CALL_MEMSLOT_FLAGS, id, flags).status; }

extern "C" void* memset(void* d, int c, size_t n) {
  auto* p = static_cast<unsigned char*>(d);
  while (n--) *p++ = static_cast<unsigned char>(c);
  return d;
}
extern "C" void* memcpy(void* d, const void* s, size_t n) {
  auto* p = static_cast<unsigned char*>(d);
  auto* q = static_cast<const unsigned char*>(s);
  while (n--) *p++ = *q++;
  return d;
}

extern "C" [[noreturn]] void guest_start(uint32_t magic, uint32_t info) {
  serial_init();
  if (magic != kBootMagic) {
    gprintf("%s: FAIL: not started by a multiboot loader (eax 0x%x)\n", guest_name, magic);
    guest_exit(1);
  }
  g_mb_info = info;
  const uint32_t* mbi = reinterpret_cast<const uint32_t*>(info);
  if (mbi[0] & 1) g_ram_top = 0x100000 + mbi[2] * 1024;  // flags bit 0: mem_lower/mem_upper
  gprintf("%s: start, RAM to 0x%x, %s\n", guest_name, g_ram_top, under_hv() ? "under hv" : "no hv");
  guest_test();
  if (g_failures) {
    gprintf("%s: FAIL (%u of %u checks failed)\n", guest_name, g_failures, g_checks);
    guest_exit(1);
  }
  gprintf("%s: PASS (%u checks)\n", guest_name, g_checks);
  guest_exit(0);
}
