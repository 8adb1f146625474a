// The 8259A pair of a VM (master at 0x20/0x21, slave at 0xA0/0xA1 cascaded on the master's
// IRQ2, edge/level control registers ELCR at 0x4D0/0x4D1), as the Intel 8259A data sheet and
// the PIIX/ICH ELCR describe them.
//
// Contract:
// - set_irq(irq, level) drives ISA line 0-15 (hv/irq.h irq_set_level). Edge-triggered inputs
//   (ELCR bit clear) latch a request on the rising edge, which stays in IRR until the
//   acknowledge even if the line drops (devices pulse); level-triggered inputs (ELCR bit set)
//   request while the line is high: IRR follows the line.
// - output() is INTR of the master: an unmasked request of higher priority than everything in
//   service. intack() is the INTA cycle: the vector of the highest request (IRR -> ISR, unless
//   auto-EOI), or the spurious IRQ 7 (master) / IRQ 15 (slave) vector when the request vanished.
// - Emulated: ICW1-ICW4 (single/cascade, edge/level bit of ICW1 ignored as on the PIIX, where
//   ELCR decides), OCW1 masks, OCW2 non-specific/specific EOI, rotate on non-specific EOI,
//   rotate in auto-EOI mode, set priority, OCW3 read IRR/ISR, poll, special mask mode,
//   auto-EOI. Not emulated: special fully nested mode (accepted, no effect), 8080 mode,
//   buffered mode (no effect on a virtual bus).
// - One lock for the pair (the cascade makes them one device). Pure code: host unit tests in
//   tests/unit/pic_test.cpp.
#pragma once

#include <stdint.h>

#include "mmu/lock.h"

namespace hv {

class PicPair {
 public:
  void reset() EXCLUDES(lock_);
  // Port accesses: 0x20, 0x21, 0xA0, 0xA1, 0x4D0, 0x4D1.
  uint8_t read(uint16_t port) EXCLUDES(lock_);
  void write(uint16_t port, uint8_t value) EXCLUDES(lock_);
  // ISA IRQ line 0-15 (2 is the cascade: ignored).
  void set_irq(unsigned irq, bool level) EXCLUDES(lock_);
  bool output() EXCLUDES(lock_);
  int intack() EXCLUDES(lock_);

  // For tests and reports.
  uint8_t irr(unsigned chip) EXCLUDES(lock_);
  uint8_t isr(unsigned chip) EXCLUDES(lock_);

 private:
  struct Chip {
    uint8_t irr = 0, isr = 0, imr = 0, elcr = 0;
    uint8_t lines = 0;      // current input levels
    uint8_t vector_base = 0;
    uint8_t lowest = 7;     // the lowest-priority IRQ (rotation); highest = lowest + 1
    uint8_t init_step = 0;  // 0: ready; 2, 3, 4: expecting ICW2/3/4
    bool icw4_needed = false, single = false;
    bool auto_eoi = false, rotate_aeoi = false, special_mask = false;
    bool read_isr = false, poll = false;
    uint8_t icw3 = 0;
    bool operator==(const Chip&) const = default;
  };
  static int highest_bit(const Chip& c, uint8_t bits);
  static int pending_irq(const Chip& c, uint8_t extra_irr);
  static void set_input(Chip& c, unsigned pin, bool level);
  uint8_t slave_request() const REQUIRES(lock_);
  int chip_pending(unsigned chip) const REQUIRES(lock_);
  int ack_chip(Chip& c, int irq) REQUIRES(lock_);
  int intack_locked() REQUIRES(lock_);
  void eoi(Chip& c, int irq, bool rotate) REQUIRES(lock_);
  uint8_t read_chip(unsigned chip, bool data) REQUIRES(lock_);
  void write_chip(unsigned chip, bool data, uint8_t v) REQUIRES(lock_);

  mmu::SpinLock lock_;
  Chip chip_[2] GUARDED_BY(lock_);
 public:
  // --- migration state (hv/vm_state.h, docs/migration.md): everything the guest can observe ---
  struct State {
    Chip chip[2];
    bool operator==(const State&) const = default;
  };
  void save(State& s) EXCLUDES(lock_);
  void restore(const State& s) EXCLUDES(lock_);
};

}  // namespace hv
