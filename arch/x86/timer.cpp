// TSC calibration against PIT channel 2 and TSC-based delays (see timer.h).
//
// PIT channel 2 in mode 0 (interrupt on terminal count) with its gate on port 0x61 bit 0:
// its OUT pin, readable as port 0x61 bit 5, goes high when the count reaches zero.
#include "arch/x86/timer.h"

#include "arch/x86/cpu.h"

namespace x86::timer {
namespace {

constexpr uint32_t kPitHz = 1193182;
constexpr uint32_t kCalibrateMs = 10;
uint64_t g_tsc_khz = 0;

uint64_t pit_measure() {
  const uint16_t count = kPitHz * kCalibrateMs / 1000;
  uint8_t gate = x86::inb(0x61);
  x86::outb(0x61, gate & ~0x03);           // gate off, speaker off
  x86::outb(0x43, 0xB0);                   // channel 2, lobyte/hibyte, mode 0, binary
  x86::outb(0x42, count & 0xFF);
  x86::outb(0x42, count >> 8);
  x86::outb(0x61, (gate & ~0x02) | 0x01);  // gate on: counting starts
  const uint64_t t0 = x86::rdtsc();
  uint64_t spins = 0;
  while (!(x86::inb(0x61) & 0x20)) {
    if (++spins > 100000000) return 0;  // no PIT
  }
  const uint64_t t1 = x86::rdtsc();
  x86::outb(0x61, gate);
  return (t1 - t0) / kCalibrateMs;
}

}  // namespace

const char* calibrate() {
  uint64_t khz = pit_measure();
  if (khz) {
    g_tsc_khz = khz;
    return "PIT";
  }
  const x86::CpuidResult max = x86::cpuid(0);
  if (max.eax >= 0x15) {
    const x86::CpuidResult r = x86::cpuid(0x15);  // TSC/crystal ratio and crystal Hz
    if (r.eax && r.ebx && r.ecx) {
      g_tsc_khz = uint64_t{r.ecx} * r.ebx / r.eax / 1000;
      return "CPUID.15H";
    }
  }
  if (max.eax >= 0x16 && (x86::cpuid(0x16).eax & 0xFFFF)) {
    g_tsc_khz = uint64_t{x86::cpuid(0x16).eax & 0xFFFF} * 1000;  // base MHz
    return "CPUID.16H";
  }
  g_tsc_khz = 2000000;
  return "guess (2 GHz)";
}

uint64_t tsc_khz() { return g_tsc_khz; }

void udelay(uint64_t us) {
  const uint64_t end = x86::rdtsc() + us * g_tsc_khz / 1000;
  while (x86::rdtsc() < end) x86::cpu_relax();
}

uint64_t now_us() { return g_tsc_khz ? x86::rdtsc() * 1000 / g_tsc_khz : 0; }

}  // namespace x86::timer
