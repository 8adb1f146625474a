// The IOAPIC of a VM (82093AA-style, version 0x11, 24 pins) at 0xFEC00000: IOREGSEL at offset
// 0x00, IOWIN at offset 0x10; registers ID (0x00), version (0x01: 0x00170011), arbitration
// (0x02: the ID) and the 24 redirection entries (0x10 + 2n low dword, 0x11 + 2n high dword).
//
// Contract:
// - set_pin(pin, level) drives a pin (hv/irq.h irq_set_level: the logical "asserted" level;
//   the polarity bit is stored and read back but does not invert it - devices of hv assert
//   logically, and the MADT's ISA defaults are active high).
// - Edge entries deliver on an asserting edge while unmasked (an edge while masked is lost, as
//   on the real part). Level entries deliver while asserted, unmasked and remote IRR clear, and
//   set remote IRR; eoi(vector) clears remote IRR on the level entries with that vector and
//   delivers again when the line is still asserted. Unmasking an asserted level entry delivers.
//   Switching an entry to edge clears its remote IRR. Delivery status always reads idle (the
//   message is handed over at once).
// - The device never calls out with its lock held: each call returns the messages to send
//   (at most 24) and the caller hands them to apic_deliver (hv/devices/chipset.cpp), so a
//   local APIC's EOI path may call back into the IOAPIC without lock-order trouble.
// - One lock for the device. Pure code: host unit tests in tests/unit/ioapic_test.cpp.
#pragma once

#include <stdint.h>

#include "hv/irq.h"
#include "mmu/lock.h"

namespace hv {

class Ioapic {
 public:
  static constexpr uint64_t kBase = 0xFEC00000;
  static constexpr uint64_t kSize = 0x1000;
  static constexpr unsigned kPins = 24;
  static constexpr uint32_t kVersion = 0x00170011;  // 24 entries (max index 23), version 0x11

  struct Out {
    ApicMessage msg[kPins];
    unsigned count = 0;
  };

  void reset() EXCLUDES(lock_);
  // MMIO at `offset` in the page: 32-bit accesses to IOREGSEL and IOWIN (others read 0 / ignored).
  uint32_t read(uint64_t offset) EXCLUDES(lock_);
  void write(uint64_t offset, uint32_t value, Out& out) EXCLUDES(lock_);
  void set_pin(unsigned pin, bool level, Out& out) EXCLUDES(lock_);
  void eoi(uint8_t vector, Out& out) EXCLUDES(lock_);

  // For tests and reports.
  uint64_t entry(unsigned pin) EXCLUDES(lock_);

 private:
  static constexpr uint64_t kMasked = 1ull << 16, kLevel = 1ull << 15, kRemoteIrr = 1ull << 14;
  void deliver(unsigned pin, Out& out) REQUIRES(lock_);
  uint32_t read_reg(uint8_t reg) REQUIRES(lock_);
  void write_reg(uint8_t reg, uint32_t v, Out& out) REQUIRES(lock_);

  mmu::SpinLock lock_;
  uint8_t sel_ GUARDED_BY(lock_) = 0;
  uint8_t id_ GUARDED_BY(lock_) = 0;
  uint64_t redir_[kPins] GUARDED_BY(lock_) = {};
  uint32_t lines_ GUARDED_BY(lock_) = 0;
 public:
  // --- migration state (hv/vm_state.h, docs/migration.md): everything the guest can observe ---
  struct State {
    uint8_t sel = 0, id = 0;
    uint64_t redir[kPins] = {};
    uint32_t lines = 0;
    bool operator==(const State&) const = default;
  };
  void save(State& s) EXCLUDES(lock_);
  void restore(const State& s) EXCLUDES(lock_);
};

}  // namespace hv
