// Guest SMP conformance (issue 11 item 6; hv/sipi_latch.h, hv/vcpu_sipi.cpp, docs/guest-platform.md
// section 8): the BSP brings up every other CPU as a PC's operating system does - INIT, INIT
// de-assert, STARTUP, STARTUP through the xAPIC ICR - into a real-mode trampoline it copied
// below 1 MiB, which switches to 32-bit protected mode (the mode the library's guests run in)
// and joins the guest's C code. Then IPIs and NMIs between the CPUs. The same image gives the
// same verdict bare under QEMU TCG (-smp 4; SeaBIOS leaves the APs waiting for SIPI, and the
// INIT resets them anyway) and under hv with hv.ap-start=sipi. One line per group,
// "smp: GROUP: ok".
//
// Groups:
//   bringup        each AP by physical APIC ID: INIT-SIPI-SIPI; it arrives exactly once (the
//                  second SIPI is ignored), in real mode at the vector's page (CS = V << 8) with
//                  EDX = the CPUID.1 signature (the INIT state), and answers in C
//   nobody         INIT and SIPI to an APIC ID no CPU has: nothing starts, nothing breaks
//   pingpong       a fixed IPI from every CPU to every other (all ordered pairs), each answered
//                  before the next
//   nmi            an NMI IPI to each AP: its NMI handler (IDT vector 2) runs; a second NMI sent
//                  while the handler runs is held back until the handler's IRET (NMI blocking),
//                  then taken, never nested
//   sipi-running   a STARTUP to a running AP is ignored (it neither restarts nor stops)
//   init-self      an AP sends INIT to its own APIC ID (physical destination): it stops and
//                  waits for SIPI; a STARTUP alone (no INIT) restarts it through the trampoline
//   init-restart   INIT-SIPI to a running AP: it restarts through the trampoline and answers again
//   x2apic         INIT-SIPI-SIPI and a ping from the BSP in x2APIC mode (the 64-bit ICR MSR);
//                  SKIP where CPUID has no x2APIC (QEMU 7.2 TCG)
//   garbage        SIPI into a page of all ones (what unbacked memory reads as): the AP takes #UD
//                  in real mode through the IVT (the guest's stub records it); INIT-SIPI brings
//                  it back
// With the argument "init-bsp" (hostile, hv only: bare, QEMU's BSP would re-run SeaBIOS) the BSP
// then sends INIT to its own APIC ID 0: hv stops the VM with a report instead (a boot CPU's INIT
// restarts it in firmware, which hv's VMs do not have).
// The CPU count comes from fw_cfg (QEMU's and hv's: key 0x05); APIC IDs are 0..N-1 on both.
#include "tests/guests/lib/guest.h"

const char guest_name[] = "smp";

extern "C" {
// The AP stacks: smp_ap_entry32 gives APIC ID i the 16 KiB below smp_stacks + (i + 1) * 16K.
uint8_t smp_stacks[8][16384] __attribute__((aligned(16)));
extern char smp_tramp_start[], smp_tramp_end[], smp_t_edx[], smp_t_cs[], smp_t_arrived[], smp_t_gdt[], smp_t_entry[];
extern char smp_ud_stub[], smp_ud_stub_end[];
void smp_ap_entry32();
void smp_nmi_stub();
extern char smp_irq_stubs[];
extern const uint8_t guest_gdt_desc[6];
}

namespace {

constexpr uint32_t kApic = 0xFEE00000;
constexpr uint32_t kId = 0x20, kTpr = 0x80, kEoi = 0xB0, kSvr = 0xF0, kIcrLow = 0x300, kIcrHigh = 0x310,
                   kLvtTimer = 0x320, kLvtLint0 = 0x350, kLvtLint1 = 0x360, kLvtError = 0x370;
constexpr uint32_t kMasked = 1u << 16;
constexpr unsigned kMaxCpus = 8;
// The trampoline's page (vector 0x07: 0x7000, below 1 MiB, outside QEMU's multiboot information
// at 0x9000 and hv's placement of it, which skips this page) and the garbage page (vector 0x06).
constexpr uint8_t kTrampVector = 0x07, kGarbageVector = 0x06;
constexpr uint32_t kTramp = kTrampVector << 12, kGarbage = kGarbageVector << 12;
// Where the #UD stub for the garbage group goes, and the byte it sets.
constexpr uint32_t kUdStub = 0x5000, kUdFlag = 0x5800;
constexpr uint8_t kPingBase = 0xC0, kPongBase = 0xD0, kCmdVector = 0xE0, kSpurious = 0xFF;
constexpr uint64_t kTimeout = 3000000000ull;  // TSC cycles (Bochs runs 4 CPUs slowly)
constexpr unsigned kRounds = 4;                // ping-pong round trips per ordered pair

uint32_t rd(uint32_t off) { return peek32(kApic + off); }
void wr(uint32_t off, uint32_t v) { poke32(kApic + off, v); }
unsigned apic_id() { return (rd(kId) >> 24) & 0xFF; }
// The BSP runs the x2apic group in x2APIC mode (the APs stay in xAPIC mode): its ICR and EOI
// are MSRs then, and its xAPIC page is gone. The initial APIC ID from CPUID says who we are in
// either mode.
volatile bool g_bsp_x2 = false;
bool x2_here() { return g_bsp_x2 && (cpuid(1).b >> 24) == 0; }
void eoi() {
  if (x2_here()) wrmsr(0x80B, 0);
  else wr(kEoi, 0);
}
void spin_tsc(uint64_t cycles) {
  const uint64_t t0 = rdtsc();
  while (rdtsc() - t0 < cycles) cpu_relax();
}
void icr(uint32_t dest, uint32_t low) {
  if (x2_here()) {
    wrmsr(0x830, (static_cast<uint64_t>(dest) << 32) | low);  // one 64-bit write; no delivery status
    return;
  }
  wr(kIcrHigh, dest << 24);
  wr(kIcrLow, low);
  // Delivery status (bit 12): wait until the message was sent.
  const uint64_t t0 = rdtsc();
  while ((rd(kIcrLow) & (1u << 12)) && rdtsc() - t0 < kTimeout) cpu_relax();
}
constexpr uint32_t kInitAssert = 0x4500, kInitDeassert = 0x8500, kStartup = 0x4600, kNmi = 0x4400;

template <class T>
T load(const volatile T& v) {
  return __atomic_load_n(const_cast<T*>(&v), __ATOMIC_ACQUIRE);
}
template <class F>
bool wait_for(F cond) {
  const uint64_t t0 = rdtsc();
  while (!cond()) {
    if (rdtsc() - t0 > kTimeout) return false;
    asm volatile("sti; nop; cli" ::: "memory");
  }
  return true;
}

// ---- shared state (per APIC ID) ----
volatile uint32_t g_alive[kMaxCpus];           // times the AP reached smp_ap_main
volatile uint32_t g_ping[kMaxCpus][kMaxCpus];  // [receiver][sender]
volatile uint32_t g_pong[kMaxCpus][kMaxCpus];  // [pinger][responder]
volatile uint32_t g_cmd[kMaxCpus];
volatile uint32_t g_cmd_done[kMaxCpus];
volatile uint32_t g_nmi_count[kMaxCpus], g_nmi_depth[kMaxCpus], g_nmi_nested[kMaxCpus];
volatile uint32_t g_nmi_in_first[kMaxCpus], g_nmi_second_sent[kMaxCpus], g_nmi_count_at_first_end[kMaxCpus];
volatile uint32_t g_spurious = 0;
unsigned g_cpus = 1;
enum : uint32_t { kCmdNone, kCmdPingAll, kCmdInitSelf };

volatile uint32_t& arrived() { return *reinterpret_cast<volatile uint32_t*>(kTramp + (smp_t_arrived - smp_tramp_start)); }
uint32_t tramp_edx() { return peek32(kTramp + (smp_t_edx - smp_tramp_start)); }
uint32_t tramp_cs() { return peek32(kTramp + (smp_t_cs - smp_tramp_start)) & 0xFFFF; }

// ---- IDT: the library's vectors 0-31, our NMI gate at 2, our stubs for 32-255 ----
struct __attribute__((packed)) IdtDesc {
  uint16_t limit;
  uint32_t base;
};
uint64_t g_idt[256] __attribute__((aligned(8)));
uint64_t gate(uint32_t off) {
  return (off & 0xFFFF) | (0x08ull << 16) | (0x8E00ull << 32) | (static_cast<uint64_t>(off >> 16) << 48);
}
void load_idt() {
  IdtDesc d{sizeof g_idt - 1, reinterpret_cast<uint32_t>(g_idt)};
  asm volatile("lidt %0" ::"m"(d));
}
void install_idt() {
  probe([] {});  // loads the library's GDT and IDT
  IdtDesc lib;
  asm volatile("sidt %0" : "=m"(lib));
  const uint64_t* src = reinterpret_cast<const uint64_t*>(lib.base);
  for (unsigned v = 0; v < 32; v++) g_idt[v] = src[v];
  g_idt[2] = gate(reinterpret_cast<uint32_t>(smp_nmi_stub));
  for (unsigned v = 32; v < 256; v++) g_idt[v] = gate(reinterpret_cast<uint32_t>(smp_irq_stubs) + (v - 32) * 16);
  load_idt();
}

void enable_apic_sw() {
  wr(kSvr, 0x100 | kSpurious);
  wr(kLvtLint0, kMasked);
  wr(kLvtLint1, kMasked);
  wr(kLvtError, kMasked | 0xFE);
  wr(kLvtTimer, kMasked | 0x30);
  wr(kTpr, 0);
}

}  // namespace

extern "C" void smp_irq_dispatch(uint32_t vector) {
  const uint8_t v = static_cast<uint8_t>(vector);
  if (v == kSpurious) {
    g_spurious = g_spurious + 1;
    return;
  }
  const unsigned me = (cpuid(1).b >> 24) % kMaxCpus;
  if (v >= kPingBase && v < kPingBase + kMaxCpus) {
    const unsigned from = v - kPingBase;
    __atomic_fetch_add(&g_ping[me][from], 1u, __ATOMIC_RELEASE);
    icr(from, kPongBase + me);  // answer
  } else if (v >= kPongBase && v < kPongBase + kMaxCpus) {
    __atomic_fetch_add(&g_pong[me][v - kPongBase], 1u, __ATOMIC_RELEASE);
  }
  eoi();
}

extern "C" void smp_nmi_dispatch() {
  const unsigned me = apic_id() % kMaxCpus;
  const uint32_t depth = g_nmi_depth[me] + 1;
  g_nmi_depth[me] = depth;
  if (depth > 1) g_nmi_nested[me] = g_nmi_nested[me] + 1;
  const uint32_t n = __atomic_add_fetch(&g_nmi_count[me], 1u, __ATOMIC_ACQ_REL);
  if (n == 1) {
    // The first NMI: tell the BSP, which sends the second now; it must wait for our IRET.
    __atomic_store_n(&g_nmi_in_first[me], 1u, __ATOMIC_RELEASE);
    const uint64_t t0 = rdtsc();
    while (!load(g_nmi_second_sent[me]) && rdtsc() - t0 < kTimeout) cpu_relax();
    spin_tsc(3000000);  // time for the second NMI to arrive (and, wrongly, to nest)
    g_nmi_count_at_first_end[me] = load(g_nmi_count[me]);
  }
  g_nmi_depth[me] = depth - 1;
}

// An AP in C, after the trampoline (smp_ap_entry32 gave it a stack of its own).
extern "C" [[noreturn]] void smp_ap_main() {
  const unsigned me = apic_id() % kMaxCpus;
  load_idt();
  enable_apic_sw();
  __atomic_fetch_add(&g_alive[me], 1u, __ATOMIC_RELEASE);
  for (;;) {
    asm volatile("cli");
    const uint32_t cmd = __atomic_exchange_n(&g_cmd[me], kCmdNone, __ATOMIC_ACQUIRE);
    if (cmd == kCmdPingAll) {
      for (unsigned to = 0; to < g_cpus; to++) {
        if (to == me) continue;
        for (unsigned k = 1; k <= kRounds; k++) {
          icr(to, kPingBase + me);
          if (!wait_for([&] { return load(g_pong[me][to]) >= k; })) break;
        }
      }
      __atomic_fetch_add(&g_cmd_done[me], 1u, __ATOMIC_RELEASE);
      continue;
    }
    if (cmd == kCmdInitSelf) {
      __atomic_fetch_add(&g_cmd_done[me], 1u, __ATOMIC_RELEASE);
      icr(me, kInitAssert);  // INIT to our own APIC ID: we stop here and wait for SIPI
      for (;;) asm volatile("cli; hlt");
    }
    // Sleep until an IPI; "sti; hlt" takes one that came after the check above.
    asm volatile("sti; hlt; cli" ::: "memory");
  }
}

namespace {

void copy_trampoline() {
  memcpy(reinterpret_cast<void*>(kTramp), smp_tramp_start, static_cast<size_t>(smp_tramp_end - smp_tramp_start));
  // The trampoline's GDT descriptor (the library's GDT, at its linear address) and its far
  // pointer to the 32-bit entry (offset, selector 0x08).
  memcpy(reinterpret_cast<void*>(kTramp + (smp_t_gdt - smp_tramp_start)), guest_gdt_desc, 6);
  poke32(kTramp + (smp_t_entry - smp_tramp_start), reinterpret_cast<uint32_t>(smp_ap_entry32));
  *reinterpret_cast<volatile uint16_t*>(kTramp + (smp_t_entry - smp_tramp_start) + 4) = 0x08;
  arrived() = 0;
}

void init_sipi(unsigned id, uint8_t vector, bool init, unsigned sipis) {
  if (init) {
    icr(id, kInitAssert);
    icr(id, kInitDeassert);
    spin_tsc(1000000);  // the SDM's 10 ms: nothing here needs it, a token wait keeps the order
  }
  for (unsigned k = 0; k < sipis; k++) {
    icr(id, kStartup | vector);
    spin_tsc(200000);
  }
}

// Starts AP `id` with INIT(-deassert)-SIPI-SIPI (or only SIPIs) and checks its arrival.
bool start_ap(unsigned id, bool init, unsigned sipis) {
  const uint32_t a0 = load(arrived()), alive0 = load(g_alive[id]);
  init_sipi(id, kTrampVector, init, sipis);
  const bool ok = wait_for([&] { return load(g_alive[id]) > alive0; });
  CHECK(ok);
  if (!ok) return false;
  spin_tsc(2000000);  // a second start would show by now
  CHECK_EQ(load(arrived()) - a0, 1u);      // exactly once: the second SIPI was ignored
  CHECK_EQ(load(g_alive[id]) - alive0, 1u);
  CHECK_EQ(tramp_cs(), static_cast<uint32_t>(kTrampVector) << 8);  // CS = vector << 8, IP = 0
  CHECK_EQ(tramp_edx(), cpuid(1).a);       // EDX after INIT: the processor signature
  return true;
}

bool ping_answered(unsigned to) {
  const uint32_t p0 = load(g_pong[0][to]);
  icr(to, kPingBase + 0);
  return wait_for([&] { return load(g_pong[0][to]) > p0; });
}

// fw_cfg key 0x05: the number of CPUs (16-bit, little endian); the selector port is 16-bit.
unsigned cpu_count() {
  const uint16_t key = 0x05;
  asm volatile("outw %0, %1" ::"a"(key), "Nd"(static_cast<uint16_t>(0x510)));
  const unsigned lo = inb(0x511), hi = inb(0x511);
  return lo | (hi << 8);
}

void test_bringup() {
  const unsigned f0 = checks_failed();
  for (unsigned id = 1; id < g_cpus; id++) start_ap(id, true, 2);
  check_group("bringup", f0);
}

void test_nobody() {
  const unsigned f0 = checks_failed();
  const uint32_t a0 = load(arrived());
  init_sipi(0x0E, kTrampVector, true, 2);  // no CPU has APIC ID 0x0E
  spin_tsc(3000000);
  CHECK_EQ(load(arrived()), a0);
  for (unsigned id = 1; id < g_cpus; id++) CHECK(ping_answered(id));
  check_group("nobody", f0);
}

void test_pingpong() {
  const unsigned f0 = checks_failed();
  // The BSP pings everyone itself; each AP in turn does the same on command.
  for (unsigned to = 1; to < g_cpus; to++)
    for (unsigned k = 1; k <= kRounds; k++) {
      const uint32_t p0 = load(g_pong[0][to]);
      icr(to, kPingBase + 0);
      if (!wait_for([&] { return load(g_pong[0][to]) > p0; })) break;
    }
  for (unsigned a = 1; a < g_cpus; a++) {
    const uint32_t d0 = load(g_cmd_done[a]);
    __atomic_store_n(&g_cmd[a], kCmdPingAll, __ATOMIC_RELEASE);
    icr(a, kCmdVector);
    CHECK(wait_for([&] { return load(g_cmd_done[a]) > d0; }));
  }
  unsigned pairs = 0;
  for (unsigned a = 0; a < g_cpus; a++)
    for (unsigned b = 0; b < g_cpus; b++) {
      if (a == b) continue;
      pairs++;
      if (load(g_ping[b][a]) < kRounds || load(g_pong[a][b]) < kRounds)
        gprintf("smp: pingpong: %u -> %u: %u pings arrived, %u pongs came back\n", a, b, load(g_ping[b][a]), load(g_pong[a][b]));
      CHECK(load(g_ping[b][a]) >= kRounds);
      CHECK(load(g_pong[a][b]) >= kRounds);
    }
  if (checks_failed() == f0) gprintf("smp: pingpong: %u ordered pairs, %u round trips each\n", pairs, kRounds);
  check_group("pingpong", f0);
}

void test_nmi() {
  const unsigned f0 = checks_failed();
  for (unsigned id = 1; id < g_cpus; id++) {
    g_nmi_count[id] = 0;
    g_nmi_nested[id] = 0;
    g_nmi_in_first[id] = 0;
    g_nmi_second_sent[id] = 0;
    g_nmi_count_at_first_end[id] = 0;
    icr(id, kNmi);
    CHECK(wait_for([&] { return load(g_nmi_in_first[id]) != 0; }));
    icr(id, kNmi);  // while its handler runs: blocked until the IRET
    __atomic_store_n(&g_nmi_second_sent[id], 1u, __ATOMIC_RELEASE);
    CHECK(wait_for([&] { return load(g_nmi_count[id]) >= 2; }));
    spin_tsc(1000000);
    CHECK_EQ(load(g_nmi_count[id]), 2u);           // both taken, no more
    CHECK_EQ(load(g_nmi_count_at_first_end[id]), 1u);  // the second only after the first's IRET
    CHECK_EQ(load(g_nmi_nested[id]), 0u);
  }
  check_group("nmi", f0);
}

void test_sipi_running() {
  const unsigned f0 = checks_failed();
  const unsigned id = 1;
  const uint32_t a0 = load(arrived()), alive0 = load(g_alive[id]);
  init_sipi(id, kTrampVector, false, 1);
  spin_tsc(3000000);
  CHECK_EQ(load(arrived()), a0);
  CHECK_EQ(load(g_alive[id]), alive0);
  CHECK(ping_answered(id));
  check_group("sipi-running", f0);
}

void test_init_self() {
  const unsigned f0 = checks_failed();
  const unsigned id = g_cpus - 1;
  const uint32_t d0 = load(g_cmd_done[id]);
  __atomic_store_n(&g_cmd[id], kCmdInitSelf, __ATOMIC_RELEASE);
  icr(id, kCmdVector);
  CHECK(wait_for([&] { return load(g_cmd_done[id]) > d0; }));
  spin_tsc(3000000);  // its INIT has taken effect: it waits for SIPI
  start_ap(id, false, 1);  // a STARTUP alone restarts it
  CHECK(ping_answered(id));
  check_group("init-self", f0);
}

void test_init_restart() {
  const unsigned f0 = checks_failed();
  const unsigned id = 1;
  start_ap(id, true, 2);
  CHECK(ping_answered(id));
  check_group("init-restart", f0);
}

// INIT-SIPI-SIPI and a ping from a BSP in x2APIC mode (the x2APIC ICR, MSR 0x830, as Linux
// uses it when the CPU offers x2APIC), then back to xAPIC through disabled.
void test_x2apic() {
  if (!((cpuid(1).c >> 21) & 1)) {
    gprintf("smp: x2apic: SKIP: no x2APIC (CPUID.1:ECX[21])\n");
    return;
  }
  const unsigned f0 = checks_failed();
  const unsigned id = 1;
  const uint64_t base = rdmsr(0x1B);
  wrmsr(0x1B, base | (1u << 10));
  g_bsp_x2 = true;
  wrmsr(0x80F, 0x100 | kSpurious);  // SVR: x2APIC mode keeps it, but say it again
  start_ap(id, true, 2);
  CHECK(ping_answered(id));
  wrmsr(0x1B, base & ~((1ull << 10) | (1ull << 11)));  // disabled, then xAPIC again
  g_bsp_x2 = false;
  wrmsr(0x1B, base);
  enable_apic_sw();  // a disable resets the LAPIC
  CHECK(ping_answered(id));
  check_group("x2apic", f0);
}

void test_garbage() {
  const unsigned f0 = checks_failed();
  const unsigned id = 1;
  // A page of all ones: FF FF is an undefined opcode (FF /7), so the AP raises #UD in real
  // mode, through IVT entry 6, which we point at a stub that sets a flag and halts.
  memset(reinterpret_cast<void*>(kGarbage), 0xFF, 4096);
  memcpy(reinterpret_cast<void*>(kUdStub), smp_ud_stub, static_cast<size_t>(smp_ud_stub_end - smp_ud_stub));
  *reinterpret_cast<volatile uint8_t*>(kUdFlag) = 0;
  poke32(6 * 4, (kUdStub >> 4) << 16);  // IVT[6] = 0500:0000
  const uint32_t alive0 = load(g_alive[id]);
  init_sipi(id, kGarbageVector, true, 1);
  CHECK(wait_for([] { return peek8(kUdFlag) != 0; }));
  CHECK_EQ(load(g_alive[id]), alive0);
  start_ap(id, true, 2);  // and back
  CHECK(ping_answered(id));
  check_group("garbage", f0);
}

}  // namespace

void guest_test() {
  gprintf("smp: %s\n", under_hv() ? "under hv" : "bare");
  const Cpuid one = cpuid(1);
  CHECK((one.d >> 9) & 1);  // CPUID.1:EDX.APIC
  asm volatile("cli");
  outb(0x21, 0xFF);  // the 8259 pair masked (bare, the BIOS leaves the PIT on it)
  outb(0xA1, 0xFF);
  g_cpus = cpu_count();
  if (g_cpus > kMaxCpus) g_cpus = kMaxCpus;
  gprintf("smp: %u CPU(s) (fw_cfg)\n", g_cpus);
  CHECK_EQ(apic_id(), 0u);
  if (g_cpus < 2) {
    gprintf("smp: SKIP: one CPU\n");
    return;
  }
  install_idt();
  enable_apic_sw();
  copy_trampoline();
  test_bringup();
  if (checks_failed()) return;  // without every AP the rest means nothing
  if (has_arg("init-bsp")) {
    gprintf("smp: init-bsp: the BSP sends INIT to its own APIC ID 0\n");
    icr(0, kInitAssert);
    spin_tsc(50000000);
    gprintf("smp: init-bsp: FAIL: still running after INIT to the BSP\n");
    check_failed(nullptr, 0, nullptr);
    return;
  }
  test_nobody();
  test_pingpong();
  test_nmi();
  test_sipi_running();
  test_init_self();
  test_init_restart();
  test_x2apic();
  test_garbage();
  CHECK_EQ(g_spurious, 0u);
  gprintf("smp: %u CPUs started %u times through the trampoline\n", g_cpus, load(arrived()));
}

// ---- the trampoline (real mode), the 32-bit AP entry, the NMI and interrupt stubs ----
// The trampoline is copied to kTramp and runs there with CS = kTrampVector << 8, IP = 0: every
// memory operand is an offset from its start (DS = CS). It records what it started with (EDX,
// CS), counts the arrival, loads the library's GDT, sets CR0.PE and jumps far to smp_ap_entry32.
asm(R"(
    .text
    .code16
    .globl smp_tramp_start, smp_tramp_end, smp_t_edx, smp_t_cs, smp_t_arrived, smp_t_gdt, smp_t_entry
    .balign 16
smp_tramp_start:
    cli
    cld
    movw %cs, %ax
    movw %ax, %ds
    movl %edx, (smp_t_edx - smp_tramp_start)
    movw %ax, (smp_t_cs - smp_tramp_start)
    lock incl (smp_t_arrived - smp_tramp_start)
    lgdtl (smp_t_gdt - smp_tramp_start)
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl *(smp_t_entry - smp_tramp_start)
    .balign 8
smp_t_edx: .long 0
smp_t_cs: .long 0
smp_t_arrived: .long 0
smp_t_gdt: .word 0
    .long 0
    .word 0
smp_t_entry: .long 0
    .word 0
smp_tramp_end:

    .globl smp_ud_stub, smp_ud_stub_end
smp_ud_stub:
    movw %cs, %ax
    movw %ax, %ds
    movb $1, (0x800)
1:  cli
    hlt
    jmp 1b
smp_ud_stub_end:
    .code32

    .globl smp_ap_entry32
smp_ap_entry32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %fs
    movw %ax, %gs
    movw %ax, %ss
    movl 0xFEE00020, %eax
    shrl $24, %eax
    andl $7, %eax
    incl %eax
    shll $14, %eax
    leal smp_stacks(%eax), %esp
    call smp_ap_main
2:  cli
    hlt
    jmp 2b

    .globl smp_nmi_stub
smp_nmi_stub:
    pushal
    cld
    call smp_nmi_dispatch
    popal
    iret

    .balign 16
    .globl smp_irq_stubs
smp_irq_stubs:
    .set vec, 32
    .rept 224
    .balign 16
    pushl $vec
    jmp smp_irq_common
    .set vec, vec + 1
    .endr
smp_irq_common:
    pushal
    cld
    pushl 32(%esp)
    call smp_irq_dispatch
    addl $4, %esp
    popal
    addl $4, %esp
    iret
)");
