// The CMOS RTC and NVRAM of a VM (MC146818A as in PC chipsets): index port 0x70 (bit 7 = NMI
// mask, bits 6:0 = register), data port 0x71.
//
// Time: the device counts in ticks of its 32.768 kHz time base; every call passes `now`, the
// VM's time in those ticks (hv/devices/chipset.cpp derives it from the guest TSC shared by
// every vCPU of the VM). The date and time start from the value given to reset() (hv reads its
// own machine's CMOS clock once when it builds the VM) and advance with `now`; tests use fake
// time (tests/unit/rtc_test.cpp).
//
// Contract:
// - Registers 0-9: seconds, alarm seconds, minutes, alarm minutes, hours, alarm hours, day of
//   week (1 = Sunday; derived from the date, writes ignored), day, month, year; 0x32: century.
//   BCD or binary (register B bit 2) and 12 or 24 hours (B bit 1, PM = bit 7 of the hour) on
//   read and on write. A write to a time register sets the clock (keeping the phase of the
//   second); with B.SET the clock stands still, and clearing SET starts the second afresh.
// - A: UIP (bit 7) is set during the 244 us (8 ticks) before each update, as the data sheet's
//   update cycle; the divider (bits 6:4) must be 010 for the clock to run (other values hold
//   it, as the divider reset does); the rate (bits 3:0) sets the periodic interrupt.
// - B: SET, PIE, AIE, UIE, SQWE (stored), DM, 24/12, DSE (stored, no daylight saving).
// - C: IRQF, PF, AF, UF; reading clears it. Flags are set whether or not enabled; IRQF is set
//   when an enabled one is, and IRQ8 gets a rising edge then (poll() says so). The alarm is
//   checked against the seconds the clock passes (at least once per second it is polled).
// - D: VRT (bit 7) always 1. Registers 0x0E-0x7F other than 0x32 are NVRAM bytes.
// - One lock for the device; calls may come from any vCPU at once.
#pragma once

#include <stdint.h>

#include "mmu/lock.h"

namespace hv {

class Rtc {
 public:
  static constexpr uint64_t kHz = 32768;
  static constexpr uint64_t kNever = ~0ull;

  // Broken-down time (UTC), and its conversion (years 1970-2199).
  struct DateTime {
    unsigned year, month, day, hour, minute, second;
  };
  static uint64_t to_seconds(const DateTime& t);
  static DateTime from_seconds(uint64_t s);

  // Date and time `unix_seconds` at tick `now`; NVRAM cleared.
  void reset(uint64_t unix_seconds, uint64_t now) EXCLUDES(lock_);
  void set_nvram(uint8_t index, uint8_t value) EXCLUDES(lock_);
  // Ports 0x70 and 0x71.
  uint8_t read(uint16_t port, uint64_t now) EXCLUDES(lock_);
  void write(uint16_t port, uint8_t value, uint64_t now) EXCLUDES(lock_);
  // True when IRQF rose since the previous call: pulse IRQ8.
  bool poll(uint64_t now) EXCLUDES(lock_);
  // The tick of the next event that would raise IRQ8 (kNever: none).
  uint64_t next_irq_tick(uint64_t now) EXCLUDES(lock_);
  bool nmi_masked() EXCLUDES(lock_);

 private:
  bool running() const REQUIRES(lock_);
  uint64_t seconds_at(uint64_t now) const REQUIRES(lock_);
  uint64_t period_ticks() const REQUIRES(lock_);
  void update_flags(uint64_t now) REQUIRES(lock_);
  uint8_t encode(unsigned v) const REQUIRES(lock_);
  unsigned decode(uint8_t v) const REQUIRES(lock_);
  uint8_t encode_hour(unsigned h) const REQUIRES(lock_);
  unsigned decode_hour(uint8_t v) const REQUIRES(lock_);
  uint8_t read_reg(uint8_t r, uint64_t now) REQUIRES(lock_);
  void write_reg(uint8_t r, uint8_t v, uint64_t now) REQUIRES(lock_);
  void set_time(const DateTime& t, uint64_t now) REQUIRES(lock_);
  bool alarm_matches(uint64_t secs) const REQUIRES(lock_);

  mmu::SpinLock lock_;
  uint8_t cmos_[128] GUARDED_BY(lock_) = {};  // alarms, A/B (bits as written), NVRAM
  uint8_t index_ GUARDED_BY(lock_) = 0;
  bool nmi_mask_ GUARDED_BY(lock_) = false;
  uint64_t base_secs_ GUARDED_BY(lock_) = 0;  // the time at base_tick_ (or the held time)
  uint64_t base_tick_ GUARDED_BY(lock_) = 0;
  uint8_t c_ GUARDED_BY(lock_) = 0;           // register C
  uint64_t seen_secs_ GUARDED_BY(lock_) = 0;  // the last second update_flags() has seen
  uint64_t seen_period_ GUARDED_BY(lock_) = 0;
  bool irq_reported_ GUARDED_BY(lock_) = false;
 public:
  // --- migration state (hv/vm_state.h, docs/migration.md): everything the guest can observe ---
  struct State {
    uint8_t cmos[128] = {};
    uint8_t index = 0;
    bool nmi_mask = false;
    uint64_t base_secs = 0, base_tick = 0;
    uint8_t c = 0;
    uint64_t seen_secs = 0, seen_period = 0;
    bool irq_reported = false;
    bool operator==(const State&) const = default;
  };
  void save(State& s) EXCLUDES(lock_);
  void restore(const State& s) EXCLUDES(lock_);
};

}  // namespace hv
