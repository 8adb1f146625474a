// The ACPI fixed-hardware power-management registers of a guest (ACPI 6.x, 4.8), at the
// ports the FADT names (hv/devices/acpi_tables.h): the PM1a event block at 0x600 (PM1_STS,
// PM1_EN), the PM1a control block at 0x604 (PM1_CNT) and the 32-bit PM timer at 0x608.
//
//   PM1_STS  0x600 16-bit  reads 0: hv never raises a fixed event (no SCI, no power button,
//                          no wake, TMR_STS not kept); writes (write 1 to clear) are ignored
//   PM1_EN   0x602 16-bit  read/write: TMR_EN, GBL_EN, PWRBTN_EN, SLPBTN_EN, RTC_EN,
//                          PCIEXP_WAKE_DIS kept as written (enabling them raises nothing)
//   PM1_CNT  0x604 16-bit  SCI_EN (bit 0) reads 1 always: the machine is in ACPI mode from
//                          reset (the FADT has no SMI_CMD to switch). BM_RLD (1) and SLP_TYP
//                          (12:10) read back; GBL_RLS (2) and SLP_EN (13) read 0. A write with
//                          SLP_EN set and SLP_TYP = kSlpTypS5 (\_S5 in the DSDT) is the
//                          soft-off request: write() returns Action::power_off and the caller
//                          ends the VM. SLP_EN with any other SLP_TYP (S1-S4, which hv does
//                          not offer: the DSDT has no \_S1-\_S4) is ignored and reported as
//                          Action::sleep_refused; the guest simply continues.
//   PM_TMR   0x608 32-bit  read-only: the guest's TSC converted to 3.579545 MHz (the FADT says
//                          TMR_VAL_EXT: all 32 bits count). Writes ignored.
// Byte and word accesses reach the bytes they cover (a byte write to 0x605 is a write of
// PM1_CNT's high byte, merged with the low byte's current value); bytes of the block without a
// register (0x606-0x607) read 0; bytes beyond the block read all ones.
//
// One per VM, used by every vCPU at once: the registers are guarded by lock_. Pure code apart
// from the lock (mmu/lock.h): the host unit tests compile it (tests/unit/acpi_tables_test.cpp).
#pragma once

#include <stdint.h>

#include "hv/devices/acpi_tables.h"
#include "mmu/lock.h"

namespace hv {

class AcpiPm {
 public:
  static constexpr uint16_t kSciEn = 1u << 0, kBmRld = 1u << 1, kGblRls = 1u << 2, kSlpEn = 1u << 13;
  static constexpr unsigned kSlpTypShift = 10;
  static constexpr uint16_t kSlpTypMask = 7u << kSlpTypShift;
  static constexpr uint16_t kPm1EnMask = (1u << 0) | (1u << 5) | (1u << 8) | (1u << 9) | (1u << 10) | (1u << 14);
  static constexpr uint64_t kPmTimerHz = 3579545;

  enum class Action { none, power_off, sleep_refused };

  // Back to the reset state (SCI_EN set, nothing enabled); before the VM runs.
  void reset() EXCLUDES(lock_);
  // `size` (1, 2 or 4) bytes at `port` (the first inside the block). `guest_tsc` and
  // `tsc_hz` give the PM timer (tsc_hz 0: the timer reads 0).
  uint32_t read(uint16_t port, unsigned size, uint64_t guest_tsc, uint64_t tsc_hz) EXCLUDES(lock_);
  Action write(uint16_t port, unsigned size, uint32_t value) EXCLUDES(lock_);
  // The SLP_TYP of the last SLP_EN write (for reports), 0xFF before any.
  uint8_t last_sleep_type() EXCLUDES(lock_);

  // The PM timer at `guest_tsc` (32 bits, wrapping).
  static uint32_t timer(uint64_t guest_tsc, uint64_t tsc_hz);

 private:
  uint16_t reg16(unsigned offset) const REQUIRES(lock_);

  mmu::SpinLock lock_;
  uint16_t en_ GUARDED_BY(lock_) = 0;
  uint16_t cnt_ GUARDED_BY(lock_) = kSciEn;
  uint8_t last_slp_typ_ GUARDED_BY(lock_) = 0xFF;
 public:
  // --- migration state (hv/vm_state.h, docs/migration.md): everything the guest can observe ---
  struct State {
    uint16_t en = 0, cnt = 0;
    uint8_t last_slp_typ = 0;
    bool operator==(const State&) const = default;
  };
  void save(State& s) EXCLUDES(lock_);
  void restore(const State& s) EXCLUDES(lock_);
};

}  // namespace hv
