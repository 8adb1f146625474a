// Local APIC access in xAPIC and x2APIC mode (see apic.h). Register offsets per the Intel SDM
// Vol. 3A, chapter 11 ("Advanced Programmable Interrupt Controller"); in x2APIC mode register
// offset X is MSR 0x800 + X/16 and the ICR is one 64-bit MSR.
#include "arch/x86/apic.h"

#include "arch/x86/cpu.h"
#include "arch/x86/idt.h"
#include "arch/x86/timer.h"

namespace x86::apic {
namespace {

constexpr uint32_t kRegId = 0x20;
constexpr uint32_t kRegTpr = 0x80;
constexpr uint32_t kRegEoi = 0xB0;
constexpr uint32_t kRegSvr = 0xF0;
constexpr uint32_t kRegEsr = 0x280;
constexpr uint32_t kRegIcrLow = 0x300;
constexpr uint32_t kRegIcrHigh = 0x310;
constexpr uint32_t kRegLvtTimer = 0x320;
constexpr uint32_t kRegLvtLint0 = 0x350;
constexpr uint32_t kRegLvtLint1 = 0x360;
constexpr uint32_t kRegLvtError = 0x370;
constexpr uint32_t kRegTimerInitial = 0x380;
constexpr uint32_t kRegTimerCurrent = 0x390;
constexpr uint32_t kRegTimerDivide = 0x3E0;
constexpr uint32_t kTimerDivideBy16 = 0x3;

constexpr uint64_t kApicBaseEnable = 1ull << 11;
constexpr uint64_t kApicBaseX2 = 1ull << 10;
constexpr uint32_t kLvtMasked = 1u << 16;
constexpr uint32_t kLvtTimerPeriodic = 1u << 17;
constexpr uint32_t kSvrEnable = 1u << 8;

constexpr uint32_t kIcrFixed = 0u << 8;
constexpr uint32_t kIcrNmi = 4u << 8;
constexpr uint32_t kIcrInit = 5u << 8;
constexpr uint32_t kIcrStartup = 6u << 8;
constexpr uint32_t kIcrPending = 1u << 12;
constexpr uint32_t kIcrAssert = 1u << 14;
constexpr uint32_t kIcrAllButSelf = 3u << 18;

bool g_x2 = false;
bool g_enabled = false;
volatile uint32_t* g_mmio = nullptr;
uint64_t g_timer_ticks_per_ms = 0;

uint32_t read(uint32_t reg) {
  if (g_x2) return static_cast<uint32_t>(x86::rdmsr(0x800 + (reg >> 4)));
  return g_mmio[reg / 4];
}

void write(uint32_t reg, uint32_t v) {
  if (g_x2) x86::wrmsr(0x800 + (reg >> 4), v);
  else g_mmio[reg / 4] = v;
}

void send_icr(uint32_t dest, uint32_t low) {
  if (g_x2) {
    // x2APIC: one WRMSR; no delivery-status bit to wait for.
    x86::wrmsr(0x830, (uint64_t{dest} << 32) | low);
    return;
  }
  for (unsigned i = 0; i < 1000000 && (read(kRegIcrLow) & kIcrPending); i++) x86::cpu_relax();
  write(kRegIcrHigh, dest << 24);
  write(kRegIcrLow, low);  // the write of the low half sends the IPI
  for (unsigned i = 0; i < 1000000 && (read(kRegIcrLow) & kIcrPending); i++) x86::cpu_relax();
}

void enable_this_cpu() {
  uint64_t base = x86::rdmsr(x86::msr::kApicBase);
  base |= kApicBaseEnable;
  if (g_x2) base |= kApicBaseX2;
  x86::wrmsr(x86::msr::kApicBase, base);

  write(kRegTpr, 0);
  write(kRegLvtTimer, kLvtMasked);
  write(kRegLvtLint0, kLvtMasked);
  write(kRegLvtLint1, kLvtMasked);
  write(kRegLvtError, kLvtMasked);
  write(kRegSvr, kSvrEnable | idt::kSpuriousVector);
  write(kRegEsr, 0);
  write(kRegEoi, 0);
}

}  // namespace

void init_bsp(uint64_t mmio_base) {
  g_x2 = (x86::cpuid(1).ecx & (1u << 21)) != 0;
  if (!mmio_base) mmio_base = x86::rdmsr(x86::msr::kApicBase) & ~0xFFFull & ((1ull << 52) - 1);
  g_mmio = reinterpret_cast<volatile uint32_t*>(mmio_base);
  enable_this_cpu();
  g_enabled = true;
}

void init_ap() { enable_this_cpu(); }

bool x2apic_mode() { return g_x2; }
bool enabled() { return g_enabled; }

uint32_t id() { return g_x2 ? read(kRegId) : read(kRegId) >> 24; }

void eoi() { write(kRegEoi, 0); }

void send_fixed(uint32_t apic_id, uint8_t vector) { send_icr(apic_id, kIcrFixed | kIcrAssert | vector); }
void send_nmi(uint32_t apic_id) { send_icr(apic_id, kIcrNmi | kIcrAssert); }
void send_init(uint32_t apic_id) { send_icr(apic_id, kIcrInit | kIcrAssert); }
void send_sipi(uint32_t apic_id, uint8_t page_vector) { send_icr(apic_id, kIcrStartup | kIcrAssert | page_vector); }
void send_nmi_all_but_self() { send_icr(0, kIcrNmi | kIcrAssert | kIcrAllButSelf); }

uint64_t calibrate_timer() {
  write(kRegTimerDivide, kTimerDivideBy16);
  write(kRegLvtTimer, kLvtMasked);
  write(kRegTimerInitial, 0xFFFFFFFF);
  timer::udelay(10000);
  const uint32_t left = read(kRegTimerCurrent);
  write(kRegTimerInitial, 0);
  g_timer_ticks_per_ms = (0xFFFFFFFFull - left) / 10;
  return g_timer_ticks_per_ms;
}

void timer_oneshot(uint64_t us, uint8_t vector) {
  uint64_t ticks = g_timer_ticks_per_ms * us / 1000;
  if (ticks == 0) ticks = 1;
  if (ticks > 0xFFFFFFFF) ticks = 0xFFFFFFFF;
  write(kRegTimerDivide, kTimerDivideBy16);
  write(kRegLvtTimer, vector);  // one-shot, unmasked
  write(kRegTimerInitial, static_cast<uint32_t>(ticks));
}

void timer_periodic(uint64_t us, uint8_t vector) {
  uint64_t ticks = g_timer_ticks_per_ms * us / 1000;
  if (ticks == 0) ticks = 1;
  if (ticks > 0xFFFFFFFF) ticks = 0xFFFFFFFF;
  write(kRegTimerDivide, kTimerDivideBy16);
  // LVT timer mode bits 18:17 = 01: periodic (SDM Vol. 3A, 11.5.4): the count reloads from
  // the initial-count register each time it reaches zero.
  write(kRegLvtTimer, kLvtTimerPeriodic | vector);
  write(kRegTimerInitial, static_cast<uint32_t>(ticks));
}

void timer_stop() {
  write(kRegLvtTimer, kLvtMasked);
  write(kRegTimerInitial, 0);
}

}  // namespace x86::apic
