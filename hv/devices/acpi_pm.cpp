// The ACPI PM1a registers and the PM timer (see acpi_pm.h).
#include "hv/devices/acpi_pm.h"

namespace hv {

void AcpiPm::reset() {
  mmu::SpinLockGuard g(lock_);
  en_ = 0;
  cnt_ = kSciEn;
  last_slp_typ_ = 0xFF;
}

uint32_t AcpiPm::timer(uint64_t guest_tsc, uint64_t tsc_hz) {
  if (!tsc_hz) return 0;
  // ticks * 3579545 / hz without a 128-bit division: whole seconds, then the remainder
  // (remainder * 3579545 < hz * 2^22 stays far below 2^64 for any TSC rate).
  const uint64_t secs = guest_tsc / tsc_hz, rem = guest_tsc % tsc_hz;
  return static_cast<uint32_t>(secs * kPmTimerHz + rem * kPmTimerHz / tsc_hz);
}

// The 16-bit register at `offset` (0 PM1_STS, 2 PM1_EN, 4 PM1_CNT, 6 none) as a read sees it.
uint16_t AcpiPm::reg16(unsigned offset) const {
  lock_.assert_held();
  switch (offset) {
    case 0: return 0;  // PM1_STS: no event is ever pending
    case 2: return en_;
    case 4: return static_cast<uint16_t>(cnt_ & (kSciEn | kBmRld | kSlpTypMask));
    default: return 0;
  }
}

uint32_t AcpiPm::read(uint16_t port, unsigned size, uint64_t guest_tsc, uint64_t tsc_hz) {
  mmu::SpinLockGuard g(lock_);
  const uint32_t tmr = timer(guest_tsc, tsc_hz);
  uint32_t v = 0;
  for (unsigned i = 0; i < size; i++) {
    const unsigned off = static_cast<unsigned>(port + i) - acpi::kPmPortsBase;
    uint8_t b = 0xFF;  // beyond the block: nobody answers
    if (off < 8) b = static_cast<uint8_t>(reg16(off & ~1u) >> (8 * (off & 1)));
    else if (off < acpi::kPmPortsCount) b = static_cast<uint8_t>(tmr >> (8 * (off - 8)));
    v |= uint32_t{b} << (8 * i);
  }
  return v;
}

AcpiPm::Action AcpiPm::write(uint16_t port, unsigned size, uint32_t value) {
  mmu::SpinLockGuard g(lock_);
  // Merge the written bytes into each 16-bit register they touch, then apply that register.
  uint16_t val[3] = {reg16(0), reg16(2), reg16(4)};
  bool touched[3] = {false, false, false};
  for (unsigned i = 0; i < size; i++) {
    const unsigned off = static_cast<unsigned>(port + i) - acpi::kPmPortsBase;
    if (off >= 6) continue;  // no register, or the read-only timer
    const uint8_t b = static_cast<uint8_t>(value >> (8 * i));
    const unsigned r = off / 2, shift = 8 * (off & 1);
    if (r == 0 && !touched[0]) val[0] = 0;  // PM1_STS: only the written 1 bits mean anything
    val[r] = static_cast<uint16_t>((val[r] & ~(0xFFu << shift)) | (uint32_t{b} << shift));
    touched[r] = true;
  }
  // PM1_STS: write 1 to clear; nothing is ever set, so nothing to do.
  if (touched[1]) en_ = val[1] & kPm1EnMask;
  Action a = Action::none;
  if (touched[2]) {
    // SCI_EN stays set (no SMI_CMD: the OS cannot leave ACPI mode); GBL_RLS and SLP_EN are
    // write-only strobes.
    cnt_ = static_cast<uint16_t>(kSciEn | (val[2] & (kBmRld | kSlpTypMask)));
    if (val[2] & kSlpEn) {
      last_slp_typ_ = static_cast<uint8_t>((val[2] & kSlpTypMask) >> kSlpTypShift);
      a = last_slp_typ_ == acpi::kSlpTypS5 ? Action::power_off : Action::sleep_refused;
    }
  }
  return a;
}

uint8_t AcpiPm::last_sleep_type() {
  mmu::SpinLockGuard g(lock_);
  return last_slp_typ_;
}

// --- migration state (see the header) ---

void AcpiPm::save(State& s) {
  mmu::SpinLockGuard g(lock_);
  s.en = en_;
  s.cnt = cnt_;
  s.last_slp_typ = last_slp_typ_;
}

void AcpiPm::restore(const State& s) {
  mmu::SpinLockGuard g(lock_);
  en_ = s.en;
  cnt_ = s.cnt;
  last_slp_typ_ = s.last_slp_typ;
}

}  // namespace hv
