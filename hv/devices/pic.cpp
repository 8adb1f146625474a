// The 8259A pair (see pic.h). Register semantics from the Intel 8259A data sheet.
#include "hv/devices/pic.h"

namespace hv {

namespace {
constexpr uint8_t kElcrMask[2] = {0xF8, 0xDE};  // IRQ 0, 1, 2, 8 and 13 are always edge (PIIX)
constexpr unsigned kCascadeIrq = 2;

// What IRR reads as: latched edge requests, plus the level inputs that are high now.
uint8_t effective_irr(uint8_t irr, uint8_t lines, uint8_t elcr) {
  return static_cast<uint8_t>((irr & ~elcr) | (lines & elcr));
}
}  // namespace

void PicPair::reset() {
  mmu::SpinLockGuard g(lock_);
  chip_[0] = Chip{};
  chip_[1] = Chip{};
  chip_[1].vector_base = 0x70;
  chip_[0].vector_base = 0x08;
}

// The IRQ of `bits` with the highest priority under the chip's rotation, or -1.
int PicPair::highest_bit(const Chip& c, uint8_t bits) {
  for (unsigned i = 0; i < 8; i++) {
    const unsigned irq = (c.lowest + 1 + i) & 7;
    if (bits & (1u << irq)) return static_cast<int>(irq);
  }
  return -1;
}

// The request that would interrupt now: unmasked, and of higher priority than every interrupt in
// service (in special mask mode only the unmasked in-service levels block, as the data sheet
// says: the mask bit then also hides the level from the priority logic).
int PicPair::pending_irq(const Chip& c, uint8_t extra_irr) {
  const uint8_t req = static_cast<uint8_t>((effective_irr(c.irr, c.lines, c.elcr) | extra_irr) & ~c.imr & ~c.isr);
  const int r = highest_bit(c, req);
  if (r < 0) return -1;
  const uint8_t blocking = c.special_mask ? static_cast<uint8_t>(c.isr & ~c.imr) : c.isr;
  const int s = highest_bit(c, blocking);
  if (s < 0) return r;
  const unsigned rank_r = (static_cast<unsigned>(r) - c.lowest - 1) & 7, rank_s = (static_cast<unsigned>(s) - c.lowest - 1) & 7;
  return rank_r < rank_s ? r : -1;
}

void PicPair::set_input(Chip& c, unsigned pin, bool level) {
  const uint8_t bit = static_cast<uint8_t>(1u << pin);
  const bool was = c.lines & bit;
  if (level) c.lines |= bit;
  else c.lines &= static_cast<uint8_t>(~bit);
  if (!(c.elcr & bit) && level && !was) c.irr |= bit;  // edge: latch the rising edge
}

uint8_t PicPair::slave_request() const {
  lock_.assert_held();
  // The slave's INT drives the master's IR2 as a level while it stays asserted.
  return pending_irq(chip_[1], 0) >= 0 ? static_cast<uint8_t>(1u << kCascadeIrq) : 0;
}

int PicPair::chip_pending(unsigned chip) const {
  lock_.assert_held();
  return chip == 0 ? pending_irq(chip_[0], slave_request()) : pending_irq(chip_[1], 0);
}

void PicPair::set_irq(unsigned irq, bool level) {
  if (irq >= 16 || irq == kCascadeIrq) return;
  mmu::SpinLockGuard g(lock_);
  set_input(chip_[irq >> 3], irq & 7, level);
}

bool PicPair::output() {
  mmu::SpinLockGuard g(lock_);
  return chip_pending(0) >= 0;
}

// Moves `irq` from IRR to ISR (or only out of IRR, in auto-EOI mode). Returns irq.
int PicPair::ack_chip(Chip& c, int irq) {
  lock_.assert_held();
  const uint8_t bit = static_cast<uint8_t>(1u << irq);
  c.irr &= static_cast<uint8_t>(~bit);
  if (c.auto_eoi) {
    if (c.rotate_aeoi) c.lowest = static_cast<uint8_t>(irq);
  } else {
    c.isr |= bit;
  }
  return irq;
}

int PicPair::intack_locked() {
  lock_.assert_held();
  Chip& m = chip_[0];
  Chip& s = chip_[1];
  const int irq = chip_pending(0);
  if (irq < 0) return m.vector_base | 7;  // the request went away before INTA: spurious IRQ 7
  ack_chip(m, irq);
  if (static_cast<unsigned>(irq) != kCascadeIrq || m.single) return m.vector_base + irq;
  const int sirq = chip_pending(1);
  // Spurious on the slave: the master has IR2 in service (it answered the first INTA), the
  // slave answers IRQ 15 without setting its ISR.
  if (sirq < 0) return s.vector_base | 7;
  ack_chip(s, sirq);
  return s.vector_base + sirq;
}

int PicPair::intack() {
  mmu::SpinLockGuard g(lock_);
  return intack_locked();
}

void PicPair::eoi(Chip& c, int irq, bool rotate) {
  lock_.assert_held();
  if (irq < 0) return;
  c.isr &= static_cast<uint8_t>(~(1u << irq));
  if (rotate) c.lowest = static_cast<uint8_t>(irq);
}

uint8_t PicPair::read_chip(unsigned chip, bool data) {
  lock_.assert_held();
  Chip& c = chip_[chip];
  if (c.poll) {
    // Poll command: this read is the acknowledge; 0x80 | level, or 0 when nothing is pending.
    c.poll = false;
    const int irq = chip_pending(chip);
    if (irq < 0) return 0;
    ack_chip(c, irq);
    return static_cast<uint8_t>(0x80 | irq);
  }
  if (data) return c.imr;
  if (c.read_isr) return c.isr;
  return static_cast<uint8_t>(effective_irr(c.irr, c.lines, c.elcr) | (chip == 0 ? slave_request() : 0));
}

void PicPair::write_chip(unsigned chip, bool data, uint8_t v) {
  lock_.assert_held();
  Chip& c = chip_[chip];
  if (!data) {
    if (v & 0x10) {  // ICW1: starts the initialization sequence
      c.icw4_needed = v & 0x01;
      c.single = v & 0x02;
      c.init_step = 2;
      c.imr = 0;
      c.isr = 0;
      c.irr = 0;  // the edge-sense latches are reset
      c.lowest = 7;
      c.special_mask = false;
      c.read_isr = false;
      c.poll = false;
      c.auto_eoi = false;
      c.rotate_aeoi = false;
      return;
    }
    if (v & 0x08) {  // OCW3
      if (v & 0x04) c.poll = true;
      if (v & 0x02) c.read_isr = v & 0x01;
      if (v & 0x40) c.special_mask = v & 0x20;
      return;
    }
    // OCW2: R SL EOI in bits 7:5, the level in 2:0.
    const int level = v & 7;
    switch (v >> 5) {
      case 0: c.rotate_aeoi = false; return;
      case 4: c.rotate_aeoi = true; return;
      case 1: eoi(c, highest_bit(c, c.isr), false); return;
      case 5: eoi(c, highest_bit(c, c.isr), true); return;
      case 3: eoi(c, level, false); return;
      case 7: eoi(c, level, true); return;
      case 6: c.lowest = static_cast<uint8_t>(level); return;
      default: return;  // 2: no operation
    }
  }
  switch (c.init_step) {
    case 2:
      c.vector_base = v & 0xF8;
      c.init_step = c.single ? (c.icw4_needed ? 4 : 0) : 3;
      return;
    case 3:
      c.icw3 = v;
      c.init_step = c.icw4_needed ? 4 : 0;
      return;
    case 4:
      c.auto_eoi = v & 0x02;
      c.init_step = 0;
      return;
    default: c.imr = v; return;  // OCW1
  }
}

uint8_t PicPair::read(uint16_t port) {
  mmu::SpinLockGuard g(lock_);
  switch (port) {
    case 0x20: return read_chip(0, false);
    case 0x21: return read_chip(0, true);
    case 0xA0: return read_chip(1, false);
    case 0xA1: return read_chip(1, true);
    case 0x4D0: return chip_[0].elcr;
    case 0x4D1: return chip_[1].elcr;
    default: return 0xFF;
  }
}

void PicPair::write(uint16_t port, uint8_t v) {
  mmu::SpinLockGuard g(lock_);
  switch (port) {
    case 0x20: write_chip(0, false, v); return;
    case 0x21: write_chip(0, true, v); return;
    case 0xA0: write_chip(1, false, v); return;
    case 0xA1: write_chip(1, true, v); return;
    case 0x4D0: chip_[0].elcr = v & kElcrMask[0]; return;
    case 0x4D1: chip_[1].elcr = v & kElcrMask[1]; return;
    default: return;
  }
}

uint8_t PicPair::irr(unsigned chip) {
  mmu::SpinLockGuard g(lock_);
  return static_cast<uint8_t>(effective_irr(chip_[chip & 1].irr, chip_[chip & 1].lines, chip_[chip & 1].elcr) |
                              ((chip & 1) == 0 ? slave_request() : 0));
}

uint8_t PicPair::isr(unsigned chip) {
  mmu::SpinLockGuard g(lock_);
  return chip_[chip & 1].isr;
}

// --- migration state (see the header) ---

void PicPair::save(State& s) {
  mmu::SpinLockGuard g(lock_);
  s.chip[0] = chip_[0];
  s.chip[1] = chip_[1];
}

void PicPair::restore(const State& s) {
  mmu::SpinLockGuard g(lock_);
  chip_[0] = s.chip[0];
  chip_[1] = s.chip[1];
}

}  // namespace hv
