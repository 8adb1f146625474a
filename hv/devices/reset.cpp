// Reset control, port 0x92 and the i8042's reset and A20 (see reset.h).
#include "hv/devices/reset.h"

namespace hv {

namespace {
constexpr uint8_t kKbcStatusSys = 0x04, kKbcStatusCmd = 0x08, kKbcStatusUnlocked = 0x10, kKbcStatusObf = 0x01;
}  // namespace

void ResetControl::reset() {
  mmu::SpinLockGuard g(lock_);
  cf9_ = 0;
  port92_ = 0x02;
  kbc_cmd_byte_ = 0x45;
  kbc_pending_ = 0;
  kbc_out_ = 0;
  kbc_obf_ = false;
  kbc_last_command_ = false;
}

uint8_t ResetControl::read(uint16_t port) {
  mmu::SpinLockGuard g(lock_);
  switch (port) {
    case 0xCF9: return cf9_;
    case 0x92: return port92_;
    case 0x60:
      kbc_obf_ = false;
      return kbc_out_;
    case 0x64:
      return static_cast<uint8_t>(kKbcStatusSys | kKbcStatusUnlocked | (kbc_last_command_ ? kKbcStatusCmd : 0) |
                                  (kbc_obf_ ? kKbcStatusObf : 0));
    default: return 0xFF;
  }
}

bool ResetControl::write(uint16_t port, uint8_t v, const char** why) {
  mmu::SpinLockGuard g(lock_);
  switch (port) {
    case 0xCF9:
      cf9_ = v & 0x0A;  // bit 2 is a command, not stored
      if (v & 0x04) {
        *why = (v & 0x08) ? "full reset through port 0xcf9" : "reset through port 0xcf9";
        return true;
      }
      return false;
    case 0x92: {
      const bool rise = (v & 1) && !(port92_ & 1);
      port92_ = v & 0x03;
      if (rise) {
        *why = "fast reset through port 0x92";
        return true;
      }
      return false;
    }
    case 0x64:
      kbc_last_command_ = true;
      kbc_pending_ = 0;
      switch (v) {
        case 0x20: kbc_out_ = kbc_cmd_byte_; kbc_obf_ = true; return false;
        case 0xAA: kbc_out_ = 0x55; kbc_obf_ = true; return false;
        case 0xAB: kbc_out_ = 0x00; kbc_obf_ = true; return false;
        case 0xD0: kbc_out_ = 0x03; kbc_obf_ = true; return false;  // reset line high, A20 on
        case 0x60:
        case 0xD1: kbc_pending_ = v; return false;
        case 0xFE:
          *why = "reset through the i8042 (command 0xfe)";
          return true;
        default: return false;
      }
    case 0x60: {
      kbc_last_command_ = false;
      if (kbc_pending_ == 0x60) kbc_cmd_byte_ = v;
      const bool reset = kbc_pending_ == 0xD1 && !(v & 1);
      kbc_pending_ = 0;
      if (reset) {
        *why = "reset through the i8042 output port";
        return true;
      }
      return false;
    }
  }
  return false;
}

// --- migration state (see the header) ---

void ResetControl::save(State& s) {
  mmu::SpinLockGuard g(lock_);
  s.cf9 = cf9_;
  s.port92 = port92_;
  s.kbc_cmd_byte = kbc_cmd_byte_;
  s.kbc_pending = kbc_pending_;
  s.kbc_out = kbc_out_;
  s.kbc_obf = kbc_obf_;
  s.kbc_last_command = kbc_last_command_;
}

void ResetControl::restore(const State& s) {
  mmu::SpinLockGuard g(lock_);
  cf9_ = s.cf9;
  port92_ = s.port92;
  kbc_cmd_byte_ = s.kbc_cmd_byte;
  kbc_pending_ = s.kbc_pending;
  kbc_out_ = s.kbc_out;
  kbc_obf_ = s.kbc_obf;
  kbc_last_command_ = s.kbc_last_command;
}

}  // namespace hv
