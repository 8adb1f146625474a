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
}  // namespace

void Vlapic::reset(uint32_t id, uint64_t tsc_khz, bool tsc_deadline) {
  id_ = id;
  tsc_khz_ = tsc_khz ? tsc_khz : 1;
  tsc_deadline_ok_ = tsc_deadline;
  hw_enabled_ = true;
  x2apic_ = false;
  tpr_ = 0;
  ldr_ = 0;
  dfr_ = 0xFFFFFFFF;
  svr_ = 0xFF;
  esr_ = esr_pending_ = 0;
  icr_high_ = icr_low_ = 0;
  for (uint32_t& l : lvt_) l = kLvtMasked;
  divide_ = 0;
  initial_ = 0;
  start_ = deadline_ = period_ = tsc_deadline_ = 0;
  timer_fired_ = 0;
  for (unsigned i = 0; i < 8; i++) {
    isr_[i] = 0;
    irr_[i].store(0, mmu::Order::relaxed);
    tmr_[i].store(0, mmu::Order::relaxed);
  }
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
}

uint32_t Vlapic::ldr() const {
  if (x2apic_) return ((id_ >> 4) << 16) | (1u << (id_ & 0xF));  // SDM 11.12.10.2
  return ldr_;
}

uint8_t Vlapic::ppr() const {
  const int isrv = highest_isr();
  const uint32_t isr_class = isrv < 0 ? 0 : static_cast<uint32_t>(isrv) & 0xF0;
  return static_cast<uint8_t>((tpr_ & 0xF0) >= isr_class ? tpr_ & 0xFF : isr_class);
}

int Vlapic::highest_irr() const {
  uint32_t words[8];
  for (unsigned i = 0; i < 8; i++) words[i] = irr_[i].load(mmu::Order::acquire);
  return highest_bit(words);
}

int Vlapic::highest_isr() const { return highest_bit(isr_); }

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
  irr_[v / 32].fetch_and(~(1u << (v % 32)), mmu::Order::relaxed);
  isr_[v / 32] |= 1u << (v % 32);
}

void Vlapic::eoi(WriteEffect& fx) {
  const int v = highest_isr();
  if (v < 0) return;  // an EOI with nothing in service is ignored
  isr_[v / 32] &= ~(1u << (v % 32));
  if ((tmr_[v / 32].load(mmu::Order::relaxed) >> (v % 32)) & 1) fx.eoi_level_vector = v;
}

bool Vlapic::accept(uint8_t vector, bool level) {
  if (vector < 16) {
    esr_remote_.fetch_or(kEsrReceiveIllegalVector, mmu::Order::relaxed);
    return false;
  }
  const uint32_t bit = 1u << (vector % 32);
  // TMR before IRR: the owner that sees the IRR bit (acquire) sees the trigger mode with it.
  if (level) tmr_[vector / 32].fetch_or(bit, mmu::Order::relaxed);
  else tmr_[vector / 32].fetch_and(~bit, mmu::Order::relaxed);
  irr_[vector / 32].fetch_or(bit, mmu::Order::release);  // pairs with highest_irr()'s acquire
  return true;
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
  if ((dfr_ >> 28) == 0xF) return (d & l) != 0;  // flat: a bit per APIC
  // Cluster: cluster number in 7:4 (15 = broadcast), member bits in 3:0.
  return ((d >> 4) == (l >> 4) || (d >> 4) == 0xF) && (d & l & 0xF) != 0;
}

unsigned Vlapic::divide_shift() const {
  // Divide configuration bits 3, 1:0 (SDM figure 11-10): 000 /2 ... 110 /128, 111 /1.
  const uint32_t code = ((divide_ >> 1) & 4) | (divide_ & 3);
  return code == 7 ? 0 : code + 1;
}

uint64_t Vlapic::ticks_to_tsc(uint64_t count) const {
  // count << shift timer ticks at cpuid::kLapicTimerKhz, in TSC cycles at tsc_khz_.
  // count < 2^32 and the shift <= 7: the tick count fits in 64 bits.
  return mul_div(count << divide_shift(), tsc_khz_, cpuid::kLapicTimerKhz);
}

void Vlapic::arm_count(uint64_t now) {
  if (!initial_ || timer_mode() == kTimerTscDeadline) {
    stop_timer();
    return;
  }
  period_ = ticks_to_tsc(initial_);
  if (!period_) period_ = 1;
  start_ = now;
  deadline_ = now + period_;
}

bool Vlapic::timer_poll(uint64_t now) {
  if (!deadline_ || now < deadline_) return false;
  const uint32_t lvt = lvt_[0];
  if (!(lvt & kLvtMasked) && sw_enabled()) accept(static_cast<uint8_t>(lvt & 0xFF), false);
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

void Vlapic::write_lvt(unsigned index, uint32_t v) {
  uint32_t w = v & kLvtWritable[index];
  // While software-disabled, the mask bits cannot be cleared (SDM 11.4.7.2).
  if (!sw_enabled()) w |= kLvtMasked;
  lvt_[index] = w;
}

bool Vlapic::read(unsigned offset, uint64_t now, uint64_t& value) const {
  value = 0;
  if (offset & 0xF) return false;
  switch (offset) {
    case kId: value = x2apic_ ? id_ : id_ << 24; return true;
    case kVersion: value = kVersionValue; return true;
    case kTpr: value = tpr_; return true;
    case kApr: if (x2apic_) return false; value = 0; return true;
    case kPpr: value = ppr(); return true;
    case kLdr: value = ldr(); return true;
    case kDfr: if (x2apic_) return false; value = dfr_; return true;
    case kSvr: value = svr_; return true;
    case kEsr: value = esr_; return true;
    case kIcrLow:
      // Delivery status (12) is always idle: delivery is done by the time the write returns.
      value = x2apic_ ? (static_cast<uint64_t>(icr_high_) << 32) | icr_low_ : icr_low_;
      return true;
    case kIcrHigh: if (x2apic_) return false; value = icr_high_; return true;
    case kLvtTimer: case kLvtThermal: case kLvtPerf: case kLvtLint0: case kLvtLint1: case kLvtError:
      value = lvt_[(offset - kLvtTimer) >> 4];
      return true;
    case kTimerInitial: value = initial_; return true;
    case kTimerCurrent: {
      if (!deadline_ || timer_mode() == kTimerTscDeadline || now >= deadline_) {
        value = 0;
        return true;
      }
      // Remaining TSC cycles back to timer ticks at the current divide.
      const uint64_t ticks = mul_div(deadline_ - now, cpuid::kLapicTimerKhz, tsc_khz_) >> divide_shift();
      value = ticks > initial_ ? initial_ : static_cast<uint32_t>(ticks);
      return true;
    }
    case kTimerDivide: value = divide_; return true;
    case kEoi: case kSelfIpi: return false;  // write-only (x2APIC: #GP; xAPIC: reads 0)
    default: break;
  }
  if (offset >= kIsr && offset < kIsr + 0x80) {
    value = isr_[(offset - kIsr) >> 4];
    return true;
  }
  if (offset >= kTmr && offset < kTmr + 0x80) {
    value = tmr_[(offset - kTmr) >> 4].load(mmu::Order::relaxed);
    return true;
  }
  if (offset >= kIrr && offset < kIrr + 0x80) {
    value = irr_[(offset - kIrr) >> 4].load(mmu::Order::acquire);
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
  if (offset & 0xF) return false;
  const uint32_t v32 = static_cast<uint32_t>(value);
  // x2APIC MSRs other than the ICR are 32-bit: the upper half is reserved (#GP if set).
  if (x2apic_ && offset != kIcrLow && (value >> 32)) return false;
  switch (offset) {
    case kTpr:
      if (x2apic_ && (v32 & ~0xFFu)) return false;
      tpr_ = v32 & 0xFF;
      return true;
    case kEoi:
      if (x2apic_ && v32) return false;  // x2APIC: EOI must be written with 0
      eoi(fx);
      return true;
    case kLdr:
      if (x2apic_) return false;  // read-only in x2APIC mode
      ldr_ = v32 & 0xFF000000u;
      return true;
    case kDfr:
      if (x2apic_) return false;
      dfr_ = v32 | 0x0FFFFFFFu;
      return true;
    case kSvr: {
      if (x2apic_ && (v32 & ~0x1FFu)) return false;
      const bool was = sw_enabled();
      svr_ = v32 & 0x1FF;
      if (was && !sw_enabled()) {
        // Software disable masks every LVT entry (SDM 11.4.7.2); IRR/ISR are kept.
        for (uint32_t& l : lvt_) l |= kLvtMasked;
      }
      return true;
    }
    case kEsr:
      if (x2apic_ && v32) return false;
      // A write latches the errors seen since the previous write and clears them.
      esr_ = esr_pending_ | esr_remote_.exchange(0, mmu::Order::relaxed);
      esr_pending_ = 0;
      return true;
    case kIcrLow:
      if (x2apic_) {
        // Reserved bits of the 64-bit x2APIC ICR: 31:20, 17:16, 13, 12 (delivery status).
        constexpr uint64_t kReserved = 0xFFF00000ull | (3u << 16) | (1u << 13) | (1u << 12);
        if (value & kReserved) return false;
        icr_low_ = v32;
        icr_high_ = static_cast<uint32_t>(value >> 32);
        return send_icr(value, fx);
      }
      icr_low_ = v32 & 0x000CDFFFu;
      return send_icr((static_cast<uint64_t>(icr_high_) << 32) | icr_low_, fx);
    case kIcrHigh:
      if (x2apic_) return false;
      icr_high_ = v32 & 0xFF000000u;
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
        initial_ = 0;
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
      if (timer_mode() == kTimerTscDeadline) return true;  // ignored in TSC-deadline mode
      initial_ = v32;
      arm_count(now);
      fx.timer_changed = true;
      return true;
    case kTimerDivide:
      if (x2apic_ && (v32 & ~0xBu)) return false;
      divide_ = v32 & 0xB;
      return true;
    case kSelfIpi:
      if (!x2apic_) return false;
      if (v32 & ~0xFFu) return false;
      return send_icr(static_cast<uint64_t>(v32 & 0xFF) | (static_cast<uint64_t>(Shorthand::kSelf) << 18), fx);
    case kId:
      // Read-only here (xAPIC: the SDM leaves ID writes model-specific; hv keeps the ID that
      // CPUID and the MADT report). x2APIC: #GP.
      return !x2apic_;
    case kVersion: case kPpr: case kApr: case kTimerCurrent:
      return !x2apic_;  // read-only: xAPIC drops the write, x2APIC #GP
    default: break;
  }
  if (offset >= kIsr && offset < kIrr + 0x80) return !x2apic_;  // ISR/TMR/IRR are read-only
  if (!x2apic_) esr_pending_ |= kEsrIllegalRegister;
  return false;
}

}  // namespace hv
