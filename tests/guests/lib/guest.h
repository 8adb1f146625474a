// The test-guest library: what every multiboot test guest (tests/guests/guest_*.cpp) uses.
//
// A guest defines `guest_name` and `guest_test()`. The library's entry (entry.asm) sets up a
// stack and calls guest_start(), which brings up the serial port, checks the multiboot hand-off,
// runs guest_test() and ends with one line "<name>: PASS (N checks)" or "<name>: FAIL (...)",
// then writes the exit status to port 0xf4 (0 pass, 1 fail): hv stops the VM with that status,
// QEMU's isa-debug-exit ends QEMU with (status << 1) | 1. The same image runs bare (QEMU) and
// under hv; tests that need hv call require_hv() first, which ends the guest with
// "<name>: SKIP: not under hv" and status 0 when there is no hv.
//
// 32-bit protected mode, paging off (guest-physical = linear). No libc: printf-like output
// with %d %u %x %s %c %p and the l/ll length modifiers; 64-bit division is done by hand (no
// libgcc on this target).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "tests/guests/lib/hv_abi.h"

// --- provided by each guest ---
extern const char guest_name[];
void guest_test();

// --- output ---
void gprintf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void gputs(const char* s);

// --- checks: a failed check prints the file, line and expression, and the guest fails ---
void check_failed(const char* file, int line, const char* what);
unsigned checks_done();
#define CHECK(cond)                                      \
  do {                                                   \
    note_check();                                        \
    if (!(cond)) check_failed(__FILE__, __LINE__, #cond); \
  } while (0)
#define CHECK_EQ(a, b)                                                                        \
  do {                                                                                        \
    note_check();                                                                             \
    const long long va_ = (long long)(a), vb_ = (long long)(b);                              \
    if (va_ != vb_) {                                                                         \
      gprintf("%s: check failed at %s:%d: %s == %s (0x%llx != 0x%llx)\n", guest_name, __FILE__, \
              __LINE__, #a, #b, va_, vb_);                                                    \
      check_failed(nullptr, 0, nullptr);                                                      \
    }                                                                                         \
  } while (0)
void note_check();
unsigned checks_failed();  // failed checks so far, on every vCPU
// A named group of checks: prints "<guest_name>: <name>: ok", or FAILED when a check failed (on
// any vCPU) since `failed_before` = checks_failed() at the group's start.
void check_group(const char* name, unsigned failed_before);
// The same for a scope: the line is printed when the scope ends.
struct CheckGroup {
  const char* name;
  unsigned failed_before;
  explicit CheckGroup(const char* n) : name(n), failed_before(checks_failed()) {}
  ~CheckGroup() { check_group(name, failed_before); }
  CheckGroup(const CheckGroup&) = delete;
  CheckGroup& operator=(const CheckGroup&) = delete;
};

// --- ending ---
[[noreturn]] void guest_exit(unsigned status);  // port 0xf4, then halt
// A guest that ends another way (guest_acpi: ACPI S5 power-off) sets this hook: guest_exit
// calls it first with the status; if it returns, its return value goes to port 0xf4.
extern unsigned (*guest_exit_hook)(unsigned status);
[[noreturn]] void skip(const char* why);         // "<name>: SKIP: why", status 0

// --- the machine ---
void outb(uint16_t port, uint8_t v);
uint8_t inb(uint16_t port);
bool under_hv();     // CPUID hypervisor bit and hv's signature at leaf 0x40000000
void require_hv();   // skip() unless under_hv()
uint32_t ram_top();  // end of the RAM above 1 MiB (multiboot mem_upper)
uint32_t multiboot_info();  // EBX at entry: the multiboot information's address
// Whether the word `w` is among the multiboot command line's arguments (after the first word,
// the module's or kernel's name): grub.cfg's module2 lines and QEMU's -append give them.
bool has_arg(const char* w);
// Continue at CPL 3 (flat segments, IOPL 3 so port I/O still works); one way (entry.asm).
extern "C" void enter_user_mode();

// Plain 32-bit MOVs to and from a guest-physical address (inline assembly, so the compiler
// can't merge or drop them, and the form is one hv's decoder knows: 8B /r and 89 /r).
uint32_t peek32(uint32_t addr);
void poke32(uint32_t addr, uint32_t v);
uint8_t peek8(uint32_t addr);

// --- exceptions (trap.asm, trap.cpp) ---
// Probes that run one instruction and report the exception it raised, if any, instead of the
// guest dying of a triple fault. The first probe loads the library's GDT and an IDT for vectors
// 0-31; from then on an exception outside a probe prints "<name>: FAIL: unexpected exception N
// ..." and ends the guest with status 1. CPL 0 only, one vCPU at a time.
struct Fault {
  bool raised;
  uint8_t vector;       // 6 #UD, 13 #GP, ...
  uint32_t error_code;  // 0 for the exceptions without one
};
// RDPMC with ECX = counter: *value is the counter when nothing was raised.
Fault try_rdpmc(uint32_t counter, uint64_t* value);
// The generic probe: runs fn() with the probe armed for the whole call and reports the first
// exception raised inside it (fn is then abandoned at the faulting instruction, longjmp-like:
// only memory it wrote before survives). Write the instruction under test as inline assembly:
//   uint64_t v; Fault f = probe([&] { v = rdmsr(0x10); });
Fault probe_call(void (*fn)(void*), void* ctx);
template <class F>
Fault probe(F fn) {
  return probe_call([](void* c) { (*static_cast<F*>(c))(); }, &fn);
}

// --- hypercalls (hv_abi.h) ---
struct HvRet {
  int32_t status;  // RAX
  uint32_t rbx, rcx, rdx;
};
HvRet hv_call(uint32_t nr, uint32_t a0 = 0, uint32_t a1 = 0, uint32_t a2 = 0, uint32_t a3 = 0, uint32_t a4 = 0);
uint64_t hv_stat(unsigned counter);  // HV_CALL_STAT; fails the guest on an error
int32_t hv_slot_create(uint32_t id, uint32_t gpa, uint32_t bytes, uint32_t pool_offset, uint32_t flags);
int32_t hv_slot_delete(uint32_t id);
int32_t hv_slot_move(uint32_t id, uint32_t gpa);
int32_t hv_slot_flags(uint32_t id, uint32_t flags);

// --- several vCPUs (smp.cpp; docs/hypercalls.md "Several vCPUs") ---
// hv starts vCPUs 1..N-1 at the image's entry too; the library parks each of them until
// vCPU 0 calls smp_start(fn), then runs fn(index) on it and ends that vCPU (HV_CALL_EXIT 0)
// when fn returns. Bare (no hv) there is one vCPU. Output (gprintf) is one line-safe critical
// section per call, so lines of different vCPUs don't mix; CHECK counts are shared.
unsigned vcpu_count();
// Releases vCPUs 1..N-1 into fn(index). Once per guest.
void smp_start(void (*fn)(unsigned index));
// Waits until vCPUs 1..N-1 have returned from fn.
void smp_wait_done();
// Waits until all N vCPUs have arrived (every vCPU must call it the same number of times).
void barrier();
inline void cpu_relax() { asm volatile("pause" ::: "memory"); }

// CPUID of (leaf, subleaf): EAX, EBX, ECX, EDX.
struct Cpuid {
  uint32_t a, b, c, d;
};
inline Cpuid cpuid(uint32_t leaf, uint32_t sub = 0) {
  Cpuid r;
  asm volatile("cpuid" : "=a"(r.a), "=b"(r.b), "=c"(r.c), "=d"(r.d) : "a"(leaf), "c"(sub));
  return r;
}
// RDMSR and WRMSR, unprobed (a #GP is an unexpected exception: wrap them in probe() where one
// may come).
inline uint64_t rdmsr(uint32_t index) {
  uint32_t lo, hi;
  asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(index) : "memory");
  return (static_cast<uint64_t>(hi) << 32) | lo;
}
inline void wrmsr(uint32_t index, uint64_t v) {
  asm volatile("wrmsr" ::"c"(index), "a"(static_cast<uint32_t>(v)), "d"(static_cast<uint32_t>(v >> 32)) : "memory");
}

// The time stamp counter; LFENCE first, so earlier instructions have completed when it is read.
inline uint64_t rdtsc() {
  uint32_t lo, hi;
  asm volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi)::"memory");
  return (static_cast<uint64_t>(hi) << 32) | lo;
}
// 64-bit unsigned division (the 32-bit guests have no libgcc for __udivdi3); n / 0 gives 0.
uint64_t div64(uint64_t n, uint64_t d);

extern "C" void* memset(void* d, int c, size_t n);
extern "C" void* memcpy(void* d, const void* s, size_t n);
