// The IOAPIC (see ioapic.h). Register layout from the 82093AA IOAPIC data sheet.
#include "hv/devices/ioapic.h"

namespace hv {

namespace {
// Writable bits of a redirection entry: vector, delivery mode, destination mode, polarity,
// trigger mode, mask (low dword); the 8-bit destination (high dword). Delivery status (12)
// and remote IRR (14) are read-only.
constexpr uint64_t kWritable = 0xFF000000'0001AFFFull;
}  // namespace

void Ioapic::reset() {
  mmu::SpinLockGuard g(lock_);
  sel_ = 0;
  id_ = 0;
  for (uint64_t& e : redir_) e = kMasked;
  lines_ = 0;
}

void Ioapic::deliver(unsigned pin, Out& out) {
  lock_.assert_held();
  const uint64_t e = redir_[pin];
  ApicMessage m;
  m.vector = static_cast<uint8_t>(e);
  m.mode = static_cast<DeliveryMode>((e >> 8) & 7);
  m.logical = e & (1ull << 11);
  m.level = e & kLevel;
  m.dest = static_cast<uint32_t>(e >> 56);
  m.shorthand = Shorthand::kNone;
  if (m.level) redir_[pin] |= kRemoteIrr;
  if (out.count < kPins) out.msg[out.count++] = m;
}

uint32_t Ioapic::read_reg(uint8_t reg) {
  lock_.assert_held();
  switch (reg) {
    case 0x00: return static_cast<uint32_t>(id_ & 0xF) << 24;
    case 0x01: return kVersion;
    case 0x02: return static_cast<uint32_t>(id_ & 0xF) << 24;  // arbitration ID = the APIC ID
    default:
      if (reg >= 0x10 && reg < 0x10 + 2 * kPins) {
        const uint64_t e = redir_[(reg - 0x10) / 2];
        return (reg & 1) ? static_cast<uint32_t>(e >> 32) : static_cast<uint32_t>(e);
      }
      return 0;
  }
}

void Ioapic::write_reg(uint8_t reg, uint32_t v, Out& out) {
  lock_.assert_held();
  if (reg == 0x00) {
    id_ = static_cast<uint8_t>((v >> 24) & 0xF);
    return;
  }
  if (reg < 0x10 || reg >= 0x10 + 2 * kPins) return;  // version, arbitration: read-only
  const unsigned pin = (reg - 0x10) / 2;
  uint64_t& e = redir_[pin];
  const uint64_t shift = (reg & 1) ? 32 : 0;
  const uint64_t mask = (0xFFFFFFFFull << shift) & kWritable;
  e = (e & ~mask) | ((static_cast<uint64_t>(v) << shift) & mask);
  if (!(e & kLevel)) e &= ~kRemoteIrr;
  // An asserted level line is delivered once the entry lets it through.
  if ((e & kLevel) && !(e & kMasked) && !(e & kRemoteIrr) && (lines_ & (1u << pin))) deliver(pin, out);
}

uint32_t Ioapic::read(uint64_t offset) {
  mmu::SpinLockGuard g(lock_);
  if (offset == 0x00) return sel_;
  if (offset == 0x10) return read_reg(sel_);
  return 0;
}

void Ioapic::write(uint64_t offset, uint32_t value, Out& out) {
  mmu::SpinLockGuard g(lock_);
  if (offset == 0x00) sel_ = static_cast<uint8_t>(value);
  else if (offset == 0x10) write_reg(sel_, value, out);
}

void Ioapic::set_pin(unsigned pin, bool level, Out& out) {
  if (pin >= kPins) return;
  mmu::SpinLockGuard g(lock_);
  const uint32_t bit = 1u << pin;
  const bool was = lines_ & bit;
  if (level) lines_ |= bit;
  else lines_ &= ~bit;
  const uint64_t e = redir_[pin];
  if (!level || (e & kMasked)) return;
  if (e & kLevel) {
    if (!(e & kRemoteIrr)) deliver(pin, out);
  } else if (!was) {
    deliver(pin, out);
  }
}

void Ioapic::eoi(uint8_t vector, Out& out) {
  mmu::SpinLockGuard g(lock_);
  for (unsigned pin = 0; pin < kPins; pin++) {
    uint64_t& e = redir_[pin];
    if (!(e & kLevel) || !(e & kRemoteIrr) || static_cast<uint8_t>(e) != vector) continue;
    e &= ~kRemoteIrr;
    if ((lines_ & (1u << pin)) && !(e & kMasked)) deliver(pin, out);
  }
}

uint64_t Ioapic::entry(unsigned pin) {
  mmu::SpinLockGuard g(lock_);
  return pin < kPins ? redir_[pin] : 0;
}

// --- migration state (see the header) ---

void Ioapic::save(State& s) {
  mmu::SpinLockGuard g(lock_);
  s.sel = sel_;
  s.id = id_;
  for (unsigned i = 0; i < kPins; i++) s.redir[i] = redir_[i];
  s.lines = lines_;
}

void Ioapic::restore(const State& s) {
  mmu::SpinLockGuard g(lock_);
  sel_ = s.sel;
  id_ = s.id;
  for (unsigned i = 0; i < kPins; i++) redir_[i] = s.redir[i];
  lines_ = s.lines;
}

}  // namespace hv
