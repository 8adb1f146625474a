// The virtual local APIC's registers, priorities and timer (see vlapic.h).
#include "hv/devices/vlapic.h"

#include "hv/cpuid_policy.h"

namespace hv {

using namespace apic;

namespace {
// Writable bits of the LVT entries (SDM figure 11-8): vector 7:0, delivery mode 10:8 (LINT0/1
// and, for the others, the fixed/NMI/SMI/INIT/ExtINT codes only where the SDM lists them),
// polarity 13, trigger 15, mask 16, timer mode 18:17.
constexpr uint32_t kLvtWritable[6] = {
    0x000700FF,  // timer: vector, mask, mode (bit 18: TSC-deadline, checked separately)
    0x000107FF,  // thermal: vector, delivery mode, mask
    0x000107FF,  // performance
    0x0001A7FF,  // LINT0: vector, delivery mode, polarity, trigger, mask
    0x0001A7FF,  // LINT1
    0x000100FF,  // error: vector, mask
};

// a * b / c without overflow of the product (x86-64 DIV of a 128-bit dividend; no libgcc
// __udivti3 in the kernel); saturates where the quotient would not fit in 64 bits.
uint64_t mul_div(uint64_t a, uint64_t b, uint64_t c) {
  const unsigned __int128 p = static_cast<unsigned __int128>(a) * b;
  uint64_t lo = static_cast<uint64_t>(p), hi = static_cast<uint64_t>(p >> 64);
  if (hi >= c) return ~0ull;
  uint64_t q, r;
  asm("divq %4" : "=a"(q), "=d"(r) : "a"(lo), "d"(hi), "rm"(c) : "cc");
  (void)r;
  return q;
}

int highest_bit(const uint32_t* words) {
  for (int w = 7; w >= 0; w--)
    if (words[w]) return w * 32 + 31 - __builtin_clz(words[w]);
  return -1;
}

// The IRR and TMR words are shared with other CPUs (accept()) and, in posted mode, with the
// PIR's senders: atomic accesses on the page's words (mmu/atomic.h's free functions).
uint32_t load_acquire(const uint32_t* p) { return mmu::atomic_load(p, mmu::Order::acquire); }
void or_word(uint32_t* p, uint32_t bits, mmu::Order o) { __atomic_fetch_or(p, bits, static_cast<int>(o)); }
void and_word(uint32_t* p, uint32_t bits, mmu::Order o) { mmu::atomic_fetch_and(p, bits, o); }
}  // namespace

uint32_t Vlapic::irr_word(unsigned i) const { return load_acquire(&page_[(kIrr + 16 * i) >> 2]); }

void Vlapic::write_mode_registers() {
  set_reg(kId, x2apic_ ? id_ : id_ << 24);
  set_reg(kLdr, ldr());
  // The ICR's upper half moves between 0x310 (xAPIC) and 0x304 (x2APIC, the CPU's 64-bit
  // view); the other place reads 0.
  const uint32_t hi = reg(kIcrHigh) | reg(kIcrLow + 4);
  set_reg(kIcrHigh, 0);
  set_reg(kIcrLow + 4, 0);
  set_icr_high(hi);
}

void Vlapic::reset(uint32_t id, uint64_t tsc_khz, bool tsc_deadline) {
  id_ = id;
  tsc_khz_ = tsc_khz ? tsc_khz : 1;
  tsc_deadline_ok_ = tsc_deadline;
  hw_enabled_ = true;
  x2apic_ = false;
  ldr_ = 0;
  // The words other CPUs may set (IRR, TMR, PIR, ON, the level latch) with atomic stores: a
  // guest that disables its APIC can have IPIs arriving meanwhile (they are lost, as the SDM
  // allows); the rest is the owner's.
  for (unsigned i = 0; i < kPageBytes / 4; i++) mmu::atomic_store(&page_[i], 0u, mmu::Order::relaxed);
  for (unsigned i = 0; i < 8; i++) {
    mmu::atomic_store(&level_latch_[i], 0u, mmu::Order::relaxed);
    if (i == 0) mmu::atomic_store(&latch_pending_, 0u, mmu::Order::relaxed);
    mmu::atomic_store(&pi_.pir[i], 0u, mmu::Order::relaxed);
  }
  mmu::atomic_store(&pi_.control, 0u, mmu::Order::relaxed);
  set_reg(kVersion, kVersionValue);  // from here: owner-only registers
  set_reg(kDfr, 0xFFFFFFFF);
  set_reg(kSvr, 0xFF);
  for (unsigned i = 0; i < 6; i++) set_reg(kLvtTimer + 16 * i, kLvtMasked);
  write_mode_registers();
  note_committed();
  esr_pending_ = 0;
  start_ = deadline_ = period_ = tsc_deadline_ = 0;
  timer_fired_ = 0;
  nmi_.store(0, mmu::Order::relaxed);
  esr_remote_.store(0, mmu::Order::relaxed);
}

void Vlapic::set_mode(bool enabled, bool x2apic) {
  if (!enabled && hw_enabled_) {
    // Globally disabling the APIC (SDM 11.4.3): its state as after a software disable, the
    // timer stopped; pending interrupts are lost, as the SDM allows.
    const uint32_t id = id_;
    const uint64_t khz = tsc_khz_;
    const bool tdl = tsc_deadline_ok_;
    reset(id, khz, tdl);
    hw_enabled_ = false;
    return;
  }
  if (x2apic && !x2apic_) ldr_ = 0;  // x2APIC LDR is derived from the ID (ldr())
  hw_enabled_ = enabled;
  x2apic_ = enabled && x2apic;
  write_mode_registers();
}

uint32_t Vlapic::ldr() const {
  if (x2apic_) return ((id_ >> 4) << 16) | (1u << (id_ & 0xF));  // SDM 11.12.10.2
  return ldr_;
}

uint8_t Vlapic::ppr() const {
  // SDM 11.8.3.1; the CPU's PPR virtualization (30.1.3) computes the same from VTPR and SVI.
  return ppr_of(reg(kTpr), highest_isr());
}

int Vlapic::highest_irr() const {
  uint32_t words[8];
  for (unsigned i = 0; i < 8; i++) words[i] = irr_word(i);
  return highest_bit(words);
}

int Vlapic::highest_isr() const {
  uint32_t words[8];
  for (unsigned i = 0; i < 8; i++) words[i] = reg(kIsr + 16 * i);
  return highest_bit(words);
}

bool Vlapic::sync_posted() {
  // Called before every entry and on every turn of the HLT loop: when nothing was posted (ON
  // and the latch flag clear) it costs two loads. A sender sets its bit before the flag, so a
  // flag seen clear here means its bits are picked up at the next call, which its notification
  // or kick makes come soon. (The CPU's posted-interrupt processing clears ON itself after
  // moving the PIR into the IRR; the latch has its own flag for that reason.)
  const bool pir = (mmu::atomic_load(&pi_.control, mmu::Order::acquire) & 1) != 0;
  const bool latch = mmu::atomic_load(&latch_pending_, mmu::Order::acquire) != 0;
  if (!pir && !latch) return false;
  // Flags first, then the words: a sender that sets a bit after our exchange of its word also
  // sets its flag again, after ours was cleared.
  if (pir) mmu::atomic_fetch_and(&pi_.control, ~1u, mmu::Order::seq_cst);
  if (latch) mmu::atomic_store(&latch_pending_, 0u, mmu::Order::seq_cst);
  bool moved = false;
  for (unsigned i = 0; i < 8; i++) {
    // Acquire: pairs with the sender's release in accept(), so the TMR it wrote first and
    // whatever it wrote before the IPI are visible here.
    uint32_t bits = 0;
    if (pir) bits |= mmu::atomic_exchange(&pi_.pir[i], 0u, mmu::Order::acquire);
    if (latch) bits |= mmu::atomic_exchange(&level_latch_[i], 0u, mmu::Order::acquire);
    if (!bits) continue;
    or_word(&page_[(kIrr + 16 * i) >> 2], bits, mmu::Order::relaxed);  // owner: no hardware runs now
    moved = true;
  }
  return moved;
}

int Vlapic::deliverable() const {
  if (!hw_enabled_) return -1;
  const int v = highest_irr();
  if (v < 0) return -1;
  // A vector is taken only if its priority class is above the processor priority class
  // (SDM 11.8.3.1).
  if ((static_cast<uint32_t>(v) & 0xF0) <= (ppr() & 0xF0u)) return -1;
  return v;
}

void Vlapic::ack(uint8_t v) {
  and_word(&page_[(kIrr + 16 * (v / 32)) >> 2], ~(1u << (v % 32)), mmu::Order::relaxed);
  set_reg(kIsr + 16 * (v / 32), reg(kIsr + 16 * (v / 32)) | 1u << (v % 32));
  refresh_ppr();
}

void Vlapic::eoi(WriteEffect& fx) {
  const int v = highest_isr();
  if (v < 0) return;  // an EOI with nothing in service is ignored
  const unsigned off = kIsr + 16 * (static_cast<unsigned>(v) / 32);
  set_reg(off, reg(off) & ~(1u << (v % 32)));
  refresh_ppr();
  if ((tmr_word(static_cast<unsigned>(v) / 32) >> (v % 32)) & 1) fx.eoi_level_vector = v;
}

bool Vlapic::accept(uint8_t vector, bool level) {
  if (vector < 16) {
    esr_remote_.fetch_or(kEsrReceiveIllegalVector, mmu::Order::relaxed);
    return false;
  }
  const uint32_t bit = 1u << (vector % 32);
  uint32_t* tmr = &page_[(kTmr + 16 * (vector / 32)) >> 2];
  // TMR before IRR: the owner that sees the IRR bit (acquire) sees the trigger mode with it.
  if (level) or_word(tmr, bit, mmu::Order::relaxed);
  else and_word(tmr, ~bit, mmu::Order::relaxed);
  if (posted_) {
    // Never the IRR (the CPU may be rewriting it in the guest): the PIR for edge, the level
    // latch for level; ON set after the bit. Release pairs with sync_posted()'s acquire (and,
    // for the PIR, with the CPU's posted-interrupt processing, a locked read of the PIR).
    or_word(level ? &level_latch_[vector / 32] : &pi_.pir[vector / 32], bit, mmu::Order::release);
    if (level) mmu::atomic_store(&latch_pending_, 1u, mmu::Order::seq_cst);
    else or_word(&pi_.control, 1u, mmu::Order::seq_cst);
    return true;
  }
  or_word(&page_[(kIrr + 16 * (vector / 32)) >> 2], bit, mmu::Order::release);  // pairs with irr_word()'s acquire
  return true;
}

void Vlapic::raise_local(uint8_t vector) {
  if (vector < 16) {
    esr_pending_ |= kEsrReceiveIllegalVector;
    return;
  }
  // The owner, outside the guest: straight into the IRR on both paths (no PIR round trip; the
  // CPU does not run this vCPU now). An edge interrupt: TMR cleared first, as accept() does.
  const uint32_t bit = 1u << (vector % 32);
  and_word(&page_[(kTmr + 16 * (vector / 32)) >> 2], ~bit, mmu::Order::relaxed);
  or_word(&page_[(kIrr + 16 * (vector / 32)) >> 2], bit, mmu::Order::release);
}

bool Vlapic::matches_physical(uint32_t dest, bool x2apic_format) const {
  if (x2apic_format || x2apic_) return dest == 0xFFFFFFFFu || dest == id_;
  return (dest & 0xFF) == 0xFF || (dest & 0xFF) == (id_ & 0xFF);
}

bool Vlapic::matches_logical(uint32_t dest, bool x2apic_format) const {
  if (x2apic_format || x2apic_) {
    if (dest == 0xFFFFFFFFu) return true;
    // x2APIC logical: cluster in 31:16, a bit mask of 16 members in 15:0 (SDM 11.12.10.2).
    const uint32_t l = ldr();
    return (dest >> 16) == (l >> 16) && (dest & l & 0xFFFF) != 0;
  }
  const uint8_t d = static_cast<uint8_t>(dest);
  if (d == 0xFF) return true;  // broadcast to all in either model
  const uint8_t l = static_cast<uint8_t>(ldr_ >> 24);
  if ((reg(kDfr) >> 28) == 0xF) return (d & l) != 0;  // flat: a bit per APIC
  // Cluster: cluster number in 7:4 (15 = broadcast), member bits in 3:0.
  return ((d >> 4) == (l >> 4) || (d >> 4) == 0xF) && (d & l & 0xF) != 0;
}

unsigned Vlapic::divide_shift() const {
  // Divide configuration bits 3, 1:0 (SDM figure 11-10): 000 /2 ... 110 /128, 111 /1.
  const uint32_t d = reg(kTimerDivide);
  const uint32_t code = ((d >> 1) & 4) | (d & 3);
  return code == 7 ? 0 : code + 1;
}

uint64_t Vlapic::ticks_to_tsc(uint64_t count) const {
  // count << shift timer ticks at cpuid::kLapicTimerKhz, in TSC cycles at tsc_khz_.
  // count < 2^32 and the shift <= 7: the tick count fits in 64 bits.
  return mul_div(count << divide_shift(), tsc_khz_, cpuid::kLapicTimerKhz);
}

void Vlapic::arm_count(uint64_t now) {
  const uint32_t initial = reg(kTimerInitial);
  if (!initial || timer_mode() == kTimerTscDeadline) {
    stop_timer();
    return;
  }
  period_ = ticks_to_tsc(initial);
  if (!period_) period_ = 1;
  start_ = now;
  deadline_ = now + period_;
}

bool Vlapic::timer_poll(uint64_t now) {
  if (!deadline_ || now < deadline_) return false;
  const uint32_t lvt = this->lvt(0);
  if (!(lvt & kLvtMasked) && sw_enabled()) raise_local(static_cast<uint8_t>(lvt & 0xFF));
  timer_fired_++;
  if (timer_mode() == kTimerPeriodic && period_) {
    // Next period from the previous deadline (no drift); periods that passed unseen (a vCPU
    // that did not run) are coalesced into the one interrupt just raised.
    const uint64_t missed = (now - deadline_) / period_;
    start_ = deadline_ + missed * period_;
    deadline_ = start_ + period_;
  } else {
    if (timer_mode() == kTimerTscDeadline) tsc_deadline_ = 0;
    deadline_ = 0;
  }
  return true;
}

uint64_t Vlapic::tsc_deadline_msr() const { return timer_mode() == kTimerTscDeadline ? tsc_deadline_ : 0; }

void Vlapic::set_tsc_deadline_msr(uint64_t v) {
  if (timer_mode() != kTimerTscDeadline) return;
  tsc_deadline_ = v;
  deadline_ = v;  // 0 disarms; a deadline in the past fires at once (at the next poll)
}

LintEvent Vlapic::lint_event(unsigned pin) const {
  LintEvent e;
  if (!hw_enabled_) {
    // A hardware-disabled APIC is out of the way: LINT0 is the CPU's INTR, LINT1 its NMI.
    e.action = pin == 0 ? LintAction::kExtInt : LintAction::kNmi;
    return e;
  }
  const uint32_t lvt = __atomic_load_n(&page_[(pin == 0 ? kLvtLint0 : kLvtLint1) >> 2], __ATOMIC_RELAXED);
  if (lvt & kLvtMasked) return e;
  switch ((lvt >> 8) & 7) {
    case 0:
      e.action = LintAction::kFixed;
      e.vector = static_cast<uint8_t>(lvt);
      break;
    case 4: e.action = LintAction::kNmi; break;
    case 5: e.action = LintAction::kInit; break;
    case 7:
      // ExtINT means "the vector comes from the 8259's INTA cycle": only LINT0 has the 8259.
      if (pin == 0) e.action = LintAction::kExtInt;
      break;
    default: break;  // SMI (hv has no SMM) and the reserved modes
  }
  return e;
}

void Vlapic::write_lvt(unsigned index, uint32_t v) {
  uint32_t w = v & kLvtWritable[index];
  // While software-disabled, the mask bits cannot be cleared (SDM 11.4.7.2).
  if (!sw_enabled()) w |= kLvtMasked;
  // Atomic: lint_event() reads LINT0/LINT1 from any CPU (a press, the 8259's INTR).
  __atomic_store_n(&page_[(kLvtTimer + 16 * index) >> 2], w, __ATOMIC_RELAXED);
}

bool Vlapic::read(unsigned offset, uint64_t now, uint64_t& value) const {
  value = 0;
  if (offset & 0xF) return false;
  switch (offset) {
    case kId: case kVersion: case kTpr: case kPpr: case kLdr: case kSvr: case kEsr:
    case kLvtTimer: case kLvtThermal: case kLvtPerf: case kLvtLint0: case kLvtLint1: case kLvtError:
    case kTimerInitial: case kTimerDivide:
      value = reg(offset);
      return true;
    case kApr: if (x2apic_) return false; value = 0; return true;
    case kDfr: if (x2apic_) return false; value = reg(kDfr); return true;
    case kIcrLow:
      // Delivery status (12) is always idle: delivery is done by the time the write returns.
      value = x2apic_ ? (static_cast<uint64_t>(icr_high()) << 32) | reg(kIcrLow) : reg(kIcrLow);
      return true;
    case kIcrHigh: if (x2apic_) return false; value = icr_high(); return true;
    case kTimerCurrent: {
      const uint32_t initial = reg(kTimerInitial);
      if (!deadline_ || timer_mode() == kTimerTscDeadline || now >= deadline_) {
        value = 0;
        return true;
      }
      // Remaining TSC cycles back to timer ticks at the current divide.
      const uint64_t ticks = mul_div(deadline_ - now, cpuid::kLapicTimerKhz, tsc_khz_) >> divide_shift();
      value = ticks > initial ? initial : static_cast<uint32_t>(ticks);
      return true;
    }
    case kEoi: case kSelfIpi: return false;  // write-only (x2APIC: #GP; xAPIC: reads 0)
    default: break;
  }
  if (offset >= kIsr && offset < kIsr + 0x80) {
    value = reg(offset);
    return true;
  }
  if (offset >= kTmr && offset < kTmr + 0x80) {
    value = tmr_word((offset - kTmr) >> 4);
    return true;
  }
  if (offset >= kIrr && offset < kIrr + 0x80) {
    value = irr_word((offset - kIrr) >> 4);
    return true;
  }
  return false;
}

bool Vlapic::send_icr(uint64_t icr, WriteEffect& fx) {
  ApicMessage m;
  m.vector = static_cast<uint8_t>(icr & 0xFF);
  m.mode = static_cast<DeliveryMode>((icr >> 8) & 7);
  m.logical = (icr >> 11) & 1;
  m.assert = (icr >> 14) & 1;
  m.level = (icr >> 15) & 1;
  m.shorthand = static_cast<Shorthand>((icr >> 18) & 3);
  m.x2apic_format = x2apic_;
  m.dest = x2apic_ ? static_cast<uint32_t>(icr >> 32) : static_cast<uint32_t>(icr >> 56);
  if (!x2apic_ && m.dest == 0xFF) m.dest = 0xFF;  // xAPIC broadcast stays 0xFF
  if ((m.mode == DeliveryMode::kFixed || m.mode == DeliveryMode::kLowestPriority) && m.vector < 16) {
    esr_pending_ |= kEsrSendIllegalVector;  // not sent (SDM 11.5.3)
    return true;
  }
  // INIT level de-assert (mode INIT, level, de-assert): nothing happens on P6 and later.
  if (m.mode == DeliveryMode::kInit && m.level && !m.assert) return true;
  fx.send = true;
  fx.msg = m;
  return true;
}

bool Vlapic::write(unsigned offset, uint64_t value, uint64_t now, WriteEffect& fx) {
  const bool ok = write_reg(offset, value, now, fx);
  note_committed();
  return ok;
}

bool Vlapic::write_stored(unsigned offset, uint64_t value, uint64_t now, WriteEffect& fx) {
  // The CPU's APIC-write emulation has put the guest's value in the page already: the
  // registers whose write depends on what was there before get that back first (a software
  // disable masks the LVTs only on an enabled -> disabled change; a timer mode change disarms).
  if (offset == apic::kSvr) set_reg(apic::kSvr, svr_committed_);
  else if (offset == apic::kLvtTimer) set_reg(apic::kLvtTimer, lvt_timer_committed_);
  return write(offset, value, now, fx);
}

bool Vlapic::write_reg(unsigned offset, uint64_t value, uint64_t now, WriteEffect& fx) {
  if (offset & 0xF) return false;
  const uint32_t v32 = static_cast<uint32_t>(value);
  // x2APIC MSRs other than the ICR are 32-bit: the upper half is reserved (#GP if set).
  if (x2apic_ && offset != kIcrLow && (value >> 32)) return false;
  switch (offset) {
    case kTpr:
      if (x2apic_ && (v32 & ~0xFFu)) return false;
      set_tpr(static_cast<uint8_t>(v32));
      return true;
    case kEoi:
      if (x2apic_ && v32) return false;  // x2APIC: EOI must be written with 0
      set_reg(kEoi, 0);  // the CPU's APIC-write emulation may have left the value there
      eoi(fx);
      return true;
    case kLdr:
      if (x2apic_) return false;  // read-only in x2APIC mode
      ldr_ = v32 & 0xFF000000u;
      set_reg(kLdr, ldr_);
      return true;
    case kDfr:
      if (x2apic_) return false;
      set_reg(kDfr, v32 | 0x0FFFFFFFu);
      return true;
    case kSvr: {
      if (x2apic_ && (v32 & ~0x1FFu)) return false;
      const bool was = sw_enabled();
      set_reg(kSvr, v32 & 0x1FF);
      if (was && !sw_enabled()) {
        // Software disable masks every LVT entry (SDM 11.4.7.2); IRR/ISR are kept.
        for (unsigned i = 0; i < 6; i++) set_reg(kLvtTimer + 16 * i, lvt(i) | kLvtMasked);
      }
      return true;
    }
    case kEsr:
      if (x2apic_ && v32) return false;
      // A write latches the errors seen since the previous write and clears them.
      set_reg(kEsr, esr_pending_ | esr_remote_.exchange(0, mmu::Order::relaxed));
      esr_pending_ = 0;
      return true;
    case kIcrLow:
      if (x2apic_) {
        // Reserved bits of the 64-bit x2APIC ICR: 31:20, 17:16, 13, 12 (delivery status).
        constexpr uint64_t kReserved = 0xFFF00000ull | (3u << 16) | (1u << 13) | (1u << 12);
        if (value & kReserved) return false;
        set_reg(kIcrLow, v32);
        set_icr_high(static_cast<uint32_t>(value >> 32));
        return send_icr(value, fx);
      }
      set_reg(kIcrLow, v32 & 0x000CDFFFu);
      return send_icr((static_cast<uint64_t>(icr_high()) << 32) | reg(kIcrLow), fx);
    case kIcrHigh:
      if (x2apic_) return false;
      set_icr_high(v32 & 0xFF000000u);
      return true;
    case kLvtTimer: {
      uint32_t w = v32;
      const uint32_t mode = (w >> 17) & 3;
      if (mode == 3 || (mode == kTimerTscDeadline && !tsc_deadline_ok_)) {
        if (x2apic_) return false;
        w &= ~(2u << 17);  // reserved mode: treated as its low bit
      }
      const uint32_t old_mode = timer_mode();
      write_lvt(0, w);
      if (timer_mode() != old_mode) {
        // Switching between modes disarms the timer (SDM 11.5.4.1).
        set_reg(kTimerInitial, 0);
        tsc_deadline_ = 0;
        stop_timer();
        fx.timer_changed = true;
      }
      return true;
    }
    case kLvtThermal: case kLvtPerf: case kLvtLint0: case kLvtLint1: case kLvtError:
      write_lvt((offset - kLvtTimer) >> 4, v32);
      return true;
    case kTimerInitial:
      if (timer_mode() == kTimerTscDeadline) {
        set_reg(kTimerInitial, 0);  // ignored in TSC-deadline mode (undo an APIC-write's store)
        return true;
      }
      set_reg(kTimerInitial, v32);
      arm_count(now);
      fx.timer_changed = true;
      return true;
    case kTimerDivide:
      if (x2apic_ && (v32 & ~0xBu)) return false;
      set_reg(kTimerDivide, v32 & 0xB);
      return true;
    case kSelfIpi:
      if (!x2apic_) return false;
      if (v32 & ~0xFFu) return false;
      set_reg(kSelfIpi, 0);
      return send_icr(static_cast<uint64_t>(v32 & 0xFF) | (static_cast<uint64_t>(Shorthand::kSelf) << 18), fx);
    case kId:
      // Read-only here (xAPIC: the SDM leaves ID writes model-specific; hv keeps the ID that
      // CPUID and the MADT report). x2APIC: #GP.
      set_reg(kId, x2apic_ ? id_ : id_ << 24);
      return !x2apic_;
    case kVersion: case kPpr: case kApr: case kTimerCurrent:
      return !x2apic_;  // read-only: xAPIC drops the write, x2APIC #GP
    default: break;
  }
  if (offset >= kIsr && offset < kIrr + 0x80) return !x2apic_;  // ISR/TMR/IRR are read-only
  if (!x2apic_) esr_pending_ |= kEsrIllegalRegister;
  return false;
}

// --- migration state (see the header) ---

void Vlapic::save(State& s) const {
  // Called with every vCPU of the VM stopped: nobody writes the IRR/TMR/PIR words meanwhile.
  for (unsigned i = 0; i < kPageBytes / 4; i++) s.page[i] = mmu::atomic_load(&page_[i], mmu::Order::relaxed);
  for (unsigned i = 0; i < 8; i++) {
    s.pir[i] = mmu::atomic_load(&pi_.pir[i], mmu::Order::relaxed);
    s.level_latch[i] = mmu::atomic_load(&level_latch_[i], mmu::Order::relaxed);
  }
  s.pi_control = mmu::atomic_load(&pi_.control, mmu::Order::relaxed);
  s.latch_pending = mmu::atomic_load(&latch_pending_, mmu::Order::relaxed);
  s.posted = posted_;
  s.id = id_;
  s.tsc_khz = tsc_khz_;
  s.tsc_deadline_ok = tsc_deadline_ok_;
  s.hw_enabled = hw_enabled_;
  s.x2apic = x2apic_;
  s.ldr = ldr_;
  s.esr_pending = esr_pending_;
  s.start = start_;
  s.deadline = deadline_;
  s.period = period_;
  s.tsc_deadline = tsc_deadline_;
  s.timer_fired = timer_fired_;
  s.nmi = nmi_.load(mmu::Order::relaxed);
  s.esr_remote = esr_remote_.load(mmu::Order::relaxed);
}

void Vlapic::restore(const State& s) {
  // Before any vCPU of the target VM runs (nobody else can send to it yet).
  for (unsigned i = 0; i < kPageBytes / 4; i++) mmu::atomic_store(&page_[i], s.page[i], mmu::Order::relaxed);
  for (unsigned i = 0; i < 8; i++) {
    mmu::atomic_store(&pi_.pir[i], s.pir[i], mmu::Order::relaxed);
    mmu::atomic_store(&level_latch_[i], s.level_latch[i], mmu::Order::relaxed);
  }
  mmu::atomic_store(&pi_.control, s.pi_control, mmu::Order::relaxed);
  mmu::atomic_store(&latch_pending_, s.latch_pending, mmu::Order::relaxed);
  posted_ = s.posted;
  id_ = s.id;
  tsc_khz_ = s.tsc_khz;
  tsc_deadline_ok_ = s.tsc_deadline_ok;
  hw_enabled_ = s.hw_enabled;
  x2apic_ = s.x2apic;
  ldr_ = s.ldr;
  esr_pending_ = s.esr_pending;
  start_ = s.start;
  deadline_ = s.deadline;
  period_ = s.period;
  tsc_deadline_ = s.tsc_deadline;
  timer_fired_ = s.timer_fired;
  nmi_.store(s.nmi, mmu::Order::relaxed);
  esr_remote_.store(s.esr_remote, mmu::Order::relaxed);
  note_committed();
}

}  // namespace hv
