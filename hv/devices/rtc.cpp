// The CMOS RTC and NVRAM (see rtc.h). Register semantics from the MC146818A data sheet.
#include "hv/devices/rtc.h"

namespace hv {

namespace {
constexpr uint8_t kRegA = 0x0A, kRegB = 0x0B, kRegC = 0x0C, kRegD = 0x0D, kRegCentury = 0x32;
constexpr uint8_t kBSet = 0x80, kBPie = 0x40, kBAie = 0x20, kBUie = 0x10, kBBinary = 0x04, kB24h = 0x02;
constexpr uint8_t kCIrqf = 0x80, kCPf = 0x40, kCAf = 0x20, kCUf = 0x10;
constexpr uint8_t kAUip = 0x80;
constexpr uint64_t kUipTicks = 8;  // 244 us at 32.768 kHz

bool leap(unsigned y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }
unsigned month_days(unsigned y, unsigned m) {
  static constexpr unsigned kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : kDays[(m - 1) % 12];
}
}  // namespace

uint64_t Rtc::to_seconds(const DateTime& t) {
  uint64_t days = 0;
  for (unsigned y = 1970; y < t.year && y < 2200; y++) days += leap(y) ? 366 : 365;
  for (unsigned m = 1; m < t.month && m <= 12; m++) days += month_days(t.year, m);
  days += t.day > 0 ? t.day - 1 : 0;
  return ((days * 24 + t.hour) * 60 + t.minute) * 60 + t.second;
}

Rtc::DateTime Rtc::from_seconds(uint64_t s) {
  DateTime t{};
  t.second = static_cast<unsigned>(s % 60);
  t.minute = static_cast<unsigned>(s / 60 % 60);
  t.hour = static_cast<unsigned>(s / 3600 % 24);
  uint64_t days = s / 86400;
  unsigned y = 1970;
  while (days >= (leap(y) ? 366u : 365u)) days -= leap(y++) ? 366 : 365;
  unsigned m = 1;
  while (days >= month_days(y, m)) days -= month_days(y, m++);
  t.year = y;
  t.month = m;
  t.day = static_cast<unsigned>(days) + 1;
  return t;
}

void Rtc::reset(uint64_t unix_seconds, uint64_t now) {
  mmu::SpinLockGuard g(lock_);
  for (uint8_t& b : cmos_) b = 0;
  cmos_[kRegA] = 0x26;  // 32.768 kHz divider, 1024 Hz periodic rate (the BIOS's setting)
  cmos_[kRegB] = kB24h;  // 24 hours, BCD
  index_ = 0;
  nmi_mask_ = false;
  base_secs_ = unix_seconds;
  base_tick_ = now;
  c_ = 0;
  seen_secs_ = unix_seconds;
  seen_period_ = 0;
  irq_reported_ = false;
}

void Rtc::set_nvram(uint8_t index, uint8_t value) {
  mmu::SpinLockGuard g(lock_);
  if (index >= 0x0E && index < 128) cmos_[index] = value;
}

bool Rtc::running() const {
  lock_.assert_held();
  return !(cmos_[kRegB] & kBSet) && ((cmos_[kRegA] >> 4) & 7) == 2;
}

uint64_t Rtc::seconds_at(uint64_t now) const {
  lock_.assert_held();
  return running() && now > base_tick_ ? base_secs_ + (now - base_tick_) / kHz : base_secs_;
}

// The periodic interrupt's period in ticks, 0 when off. Rates 1 and 2 are 256 and 128 Hz
// with the 32.768 kHz time base; rate r >= 3 is 65536 >> r Hz.
uint64_t Rtc::period_ticks() const {
  lock_.assert_held();
  const unsigned r = cmos_[kRegA] & 0xF;
  if (r == 0 || ((cmos_[kRegA] >> 4) & 7) != 2) return 0;
  return r <= 2 ? 1ull << (r + 6) : 1ull << (r - 1);
}

uint8_t Rtc::encode(unsigned v) const {
  lock_.assert_held();
  if (cmos_[kRegB] & kBBinary) return static_cast<uint8_t>(v);
  return static_cast<uint8_t>(((v / 10 % 10) << 4) | (v % 10));
}

unsigned Rtc::decode(uint8_t v) const {
  lock_.assert_held();
  if (cmos_[kRegB] & kBBinary) return v;
  return (v >> 4) * 10u + (v & 0xFu);
}

uint8_t Rtc::encode_hour(unsigned h) const {
  lock_.assert_held();
  if (cmos_[kRegB] & kB24h) return encode(h);
  const unsigned h12 = h % 12 == 0 ? 12 : h % 12;
  return static_cast<uint8_t>(encode(h12) | (h >= 12 ? 0x80 : 0));
}

unsigned Rtc::decode_hour(uint8_t v) const {
  lock_.assert_held();
  if (cmos_[kRegB] & kB24h) return decode(v);
  return decode(v & 0x7F) % 12 + ((v & 0x80) ? 12 : 0);
}

bool Rtc::alarm_matches(uint64_t secs) const {
  lock_.assert_held();
  const DateTime t = from_seconds(secs);
  // An alarm byte with bits 7:6 set matches every value ("don't care").
  auto match = [](uint8_t alarm, uint8_t cur) { return (alarm & 0xC0) == 0xC0 || alarm == cur; };
  return match(cmos_[1], encode(t.second)) && match(cmos_[3], encode(t.minute)) && match(cmos_[5], encode_hour(t.hour));
}

void Rtc::update_flags(uint64_t now) {
  lock_.assert_held();
  if (running()) {
    const uint64_t s = seconds_at(now);
    if (s > seen_secs_) {
      c_ |= kCUf;
      // The alarm is compared at the update cycles since the last look (the last few if the
      // device was not looked at for long: an alarm needs a poll at least once per second).
      const uint64_t from = s - seen_secs_ > 4 ? s - 4 : seen_secs_ + 1;
      for (uint64_t x = from; x <= s; x++) {
        if (alarm_matches(x)) c_ |= kCAf;
      }
      seen_secs_ = s;
    }
  }
  if (const uint64_t p = period_ticks()) {
    if (now / p != seen_period_) {
      c_ |= kCPf;
      seen_period_ = now / p;
    }
  }
  if (c_ & cmos_[kRegB] & (kCPf | kCAf | kCUf)) c_ |= kCIrqf;
}

void Rtc::set_time(const DateTime& t, uint64_t now) {
  lock_.assert_held();
  if (running() && now > base_tick_) base_tick_ = now - (now - base_tick_) % kHz;  // keep the second's phase
  base_secs_ = to_seconds(t);
  seen_secs_ = base_secs_;
}

uint8_t Rtc::read_reg(uint8_t r, uint64_t now) {
  lock_.assert_held();
  const DateTime t = from_seconds(seconds_at(now));
  switch (r) {
    case 0: return encode(t.second);
    case 2: return encode(t.minute);
    case 4: return encode_hour(t.hour);
    case 6: return static_cast<uint8_t>((seconds_at(now) / 86400 + 4) % 7 + 1);  // 1970-01-01 was a Thursday
    case 7: return encode(t.day);
    case 8: return encode(t.month);
    case 9: return encode(t.year % 100);
    case kRegCentury: return encode(t.year / 100);
    case kRegA: {
      const bool uip = running() && (now - base_tick_) % kHz >= kHz - kUipTicks;
      return static_cast<uint8_t>((cmos_[kRegA] & 0x7F) | (uip ? kAUip : 0));
    }
    case kRegC: {
      update_flags(now);
      const uint8_t v = c_;
      c_ = 0;
      irq_reported_ = false;
      return v;
    }
    case kRegD: return 0x80;  // valid RAM and time
    default: return cmos_[r & 0x7F];
  }
}

void Rtc::write_reg(uint8_t r, uint8_t v, uint64_t now) {
  lock_.assert_held();
  DateTime t = from_seconds(seconds_at(now));
  switch (r) {
    case 0: t.second = decode(v) % 60; break;
    case 2: t.minute = decode(v) % 60; break;
    case 4: t.hour = decode_hour(v) % 24; break;
    case 6: return;  // the day of the week follows the date
    case 7: t.day = decode(v); break;
    case 8: t.month = decode(v); break;
    case 9: t.year = t.year / 100 * 100 + decode(v) % 100; break;
    case kRegCentury: t.year = decode(v) * 100 + t.year % 100; break;
    case kRegA:
    case kRegB: {
      const bool was = running();
      const uint64_t secs = seconds_at(now);
      if (r == kRegA) {
        cmos_[kRegA] = v & 0x7F;
        if (const uint64_t p = period_ticks()) seen_period_ = now / p;
      } else {
        cmos_[kRegB] = (v & kBSet) ? static_cast<uint8_t>(v & ~kBUie) : v;  // SET clears UIE
      }
      if (was && !running()) {
        base_secs_ = secs;  // hold the time
        base_tick_ = now;
      } else if (!was && running()) {
        base_tick_ = now;  // the second starts afresh
        seen_secs_ = base_secs_;
      }
      return;
    }
    case kRegC:
    case kRegD: return;  // read-only
    default: cmos_[r & 0x7F] = v; return;
  }
  if (t.year < 1970) t.year = 1970;
  if (t.year > 2199) t.year = 2199;
  if (t.month < 1 || t.month > 12) t.month = 1;
  if (t.day < 1 || t.day > month_days(t.year, t.month)) t.day = 1;
  set_time(t, now);
}

uint8_t Rtc::read(uint16_t port, uint64_t now) {
  mmu::SpinLockGuard g(lock_);
  if (port != 0x71) return 0xFF;  // the index register is write-only
  return read_reg(index_, now);
}

void Rtc::write(uint16_t port, uint8_t v, uint64_t now) {
  mmu::SpinLockGuard g(lock_);
  if (port == 0x70) {
    nmi_mask_ = v & 0x80;
    index_ = v & 0x7F;
  } else if (port == 0x71) {
    write_reg(index_, v, now);
  }
}

bool Rtc::poll(uint64_t now) {
  mmu::SpinLockGuard g(lock_);
  update_flags(now);
  if (!(c_ & kCIrqf) || irq_reported_) return false;
  irq_reported_ = true;
  return true;
}

uint64_t Rtc::next_irq_tick(uint64_t now) {
  mmu::SpinLockGuard g(lock_);
  if (c_ & kCIrqf) return kNever;  // no new edge before the guest reads C
  uint64_t next = kNever;
  const uint8_t b = cmos_[kRegB];
  if (b & kBPie) {
    if (const uint64_t p = period_ticks()) next = (now / p + 1) * p;
  }
  if ((b & (kBUie | kBAie)) && running()) {
    const uint64_t e = now > base_tick_ ? now - base_tick_ : 0;
    const uint64_t s = base_tick_ + (e / kHz + 1) * kHz;
    if (s < next) next = s;
  }
  return next;
}

bool Rtc::nmi_masked() {
  mmu::SpinLockGuard g(lock_);
  return nmi_mask_;
}

// --- migration state (see the header) ---

void Rtc::save(State& s) {
  mmu::SpinLockGuard g(lock_);
  for (unsigned i = 0; i < 128; i++) s.cmos[i] = cmos_[i];
  s.index = index_;
  s.nmi_mask = nmi_mask_;
  s.base_secs = base_secs_;
  s.base_tick = base_tick_;
  s.c = c_;
  s.seen_secs = seen_secs_;
  s.seen_period = seen_period_;
  s.irq_reported = irq_reported_;
}

void Rtc::restore(const State& s) {
  mmu::SpinLockGuard g(lock_);
  for (unsigned i = 0; i < 128; i++) cmos_[i] = s.cmos[i];
  index_ = s.index;
  nmi_mask_ = s.nmi_mask;
  base_secs_ = s.base_secs;
  base_tick_ = s.base_tick;
  c_ = s.c;
  seen_secs_ = s.seen_secs;
  seen_period_ = s.seen_period;
  irq_reported_ = s.irq_reported;
}

}  // namespace hv
