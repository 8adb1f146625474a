// Time for the chipset guests (guest_pit/rtc/pic/ioapic.cpp): the TSC rate measured the way
// kernels calibrate, with PIT channel 2 through port 0x61 (gate on, speaker off, mode 0, poll
// OUT2 in bit 5), and waits on the TSC.
#pragma once

#include "tests/guests/lib/guest.h"

// Programs channel 2 in mode 0 with `count` and waits for OUT2: the TSC cycles it took, 0 when
// OUT2 never rose. *low_at_start: OUT2 read low right after the count was written.
inline uint64_t pit2_cycles(uint16_t count, bool* low_at_start) {
  outb(0x61, static_cast<uint8_t>((inb(0x61) & ~0x02) | 0x01));
  outb(0x43, 0xB0);
  outb(0x42, static_cast<uint8_t>(count));
  outb(0x42, static_cast<uint8_t>(count >> 8));
  const uint64_t t0 = rdtsc();
  const bool low = !(inb(0x61) & 0x20);
  if (low_at_start) *low_at_start = low;
  for (uint32_t i = 0; i < 20000000; i++) {
    if (inb(0x61) & 0x20) return rdtsc() - t0;
  }
  return 0;
}

// The TSC rate in Hz from 10 ms of channel 2 (11932 ticks), 0 when the PIT did not answer.
inline uint64_t tsc_hz_from_pit() {
  const uint64_t c = pit2_cycles(11932, nullptr);
  return div64(c * 1193182ull, 11932);
}

inline void wait_cycles(uint64_t cycles) {
  const uint64_t t0 = rdtsc();
  while (rdtsc() - t0 < cycles) cpu_relax();
}

// |a - b| <= percent of b + slack.
inline bool near(uint64_t a, uint64_t b, unsigned percent, uint64_t slack) {
  const uint64_t d = a > b ? a - b : b - a;
  return d <= div64(b * percent, 100) + slack;
}
