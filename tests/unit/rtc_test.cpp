// The CMOS RTC (hv/devices/rtc.h) on fake time (ticks of 32.768 kHz).
#include <catch2/catch.hpp>

#include "hv/devices/rtc.h"

using hv::Rtc;

namespace {
constexpr uint64_t kS = Rtc::kHz;
uint8_t reg(Rtc& r, uint8_t index, uint64_t now) {
  r.write(0x70, index, now);
  return r.read(0x71, now);
}
void set(Rtc& r, uint8_t index, uint8_t v, uint64_t now) {
  r.write(0x70, index, now);
  r.write(0x71, v, now);
}
}  // namespace

TEST_CASE("rtc: date conversion round trips across leap years", "[rtc]") {
  const Rtc::DateTime t{2024, 2, 29, 23, 59, 58};
  const uint64_t s = Rtc::to_seconds(t);
  CHECK(s == 1709251198ull);
  const Rtc::DateTime u = Rtc::from_seconds(s + 2);
  CHECK(u.year == 2024);
  CHECK(u.month == 3);
  CHECK(u.day == 1);
  CHECK(u.hour == 0);
  CHECK(Rtc::to_seconds(Rtc::DateTime{1970, 1, 1, 0, 0, 0}) == 0);
  const Rtc::DateTime e = Rtc::from_seconds(4102444800ull);  // 2100-01-01 (not a leap year)
  CHECK(e.year == 2100);
  CHECK(e.month == 1);
  CHECK(e.day == 1);
}

TEST_CASE("rtc: BCD and binary, 24 and 12 hours, time advances with ticks", "[rtc]") {
  Rtc r;
  r.reset(Rtc::to_seconds({2026, 11, 30, 13, 5, 59}), 0);
  CHECK(reg(r, 0, 0) == 0x59);
  CHECK(reg(r, 2, 0) == 0x05);
  CHECK(reg(r, 4, 0) == 0x13);
  CHECK(reg(r, 7, 0) == 0x30);
  CHECK(reg(r, 8, 0) == 0x11);
  CHECK(reg(r, 9, 0) == 0x26);
  CHECK(reg(r, 0x32, 0) == 0x20);
  CHECK(reg(r, 6, 0) == 2);  // a Monday
  CHECK(reg(r, 0, kS - 1) == 0x59);
  CHECK(reg(r, 0, kS) == 0x00);
  CHECK(reg(r, 2, kS) == 0x06);
  set(r, 0x0B, 0x06, kS);  // binary, 24h
  CHECK(reg(r, 0, 3 * kS) == 2);
  CHECK(reg(r, 4, 3 * kS) == 13);
  set(r, 0x0B, 0x04, kS);  // binary, 12h
  CHECK(reg(r, 4, 3 * kS) == (0x80 | 1));
  set(r, 0x0B, 0x00, kS);  // BCD, 12h
  set(r, 4, 0x12, 3 * kS); // 12 AM = midnight
  set(r, 0x0B, 0x02, kS);
  CHECK(reg(r, 4, 3 * kS) == 0x00);
  CHECK(reg(r, 0x0D, 0) == 0x80);
}

TEST_CASE("rtc: UIP in the 244 us before each update; SET holds the clock", "[rtc]") {
  Rtc r;
  r.reset(1000, 100);
  CHECK((reg(r, 0x0A, 100) & 0x80) == 0);
  CHECK((reg(r, 0x0A, 100 + kS - 9) & 0x80) == 0);
  CHECK((reg(r, 0x0A, 100 + kS - 8) & 0x80) == 0x80);
  CHECK((reg(r, 0x0A, 100 + kS) & 0x80) == 0);
  CHECK((reg(r, 0x0A, 0) & 0x7F) == 0x26);
  set(r, 0x0B, 0x82, 100 + kS / 2);  // SET
  const uint8_t held = reg(r, 0, 100 + 5 * kS);
  CHECK(held == 0x40);  // 1000 s = 00:16:40
  set(r, 0, 0x10, 100 + 5 * kS);
  set(r, 0x0B, 0x02, 100 + 6 * kS);  // run again from :10
  CHECK(reg(r, 0, 100 + 7 * kS - 1) == 0x10);
  CHECK(reg(r, 0, 100 + 7 * kS) == 0x11);
  // Divider reset holds the clock too.
  set(r, 0x0A, 0x66, 100 + 7 * kS);
  CHECK(reg(r, 0, 100 + 20 * kS) == 0x11);
}

TEST_CASE("rtc: register C flags, IRQ8 edges for periodic, update and alarm interrupts", "[rtc]") {
  Rtc r;
  r.reset(0, 0);
  CHECK(reg(r, 0x0C, 40) == 0x40);  // the 1024 Hz periodic flag runs without PIE
  CHECK(reg(r, 0x0C, 50) == 0x00);  // read clears
  CHECK_FALSE(r.poll(100));
  set(r, 0x0B, 0x42, 100);  // PIE
  CHECK(r.next_irq_tick(100) == 128);
  CHECK(r.poll(128));
  CHECK_FALSE(r.poll(200));  // IRQF stays until C is read
  CHECK(r.next_irq_tick(200) == Rtc::kNever);
  CHECK(reg(r, 0x0C, 200) == 0xC0);
  CHECK(r.poll(256));
  reg(r, 0x0C, 256);
  set(r, 0x0A, 0x2F, 256);  // 2 Hz
  CHECK(r.next_irq_tick(300) == kS / 2);
  set(r, 0x0B, 0x12, 300);  // UIE only
  CHECK(r.next_irq_tick(300) == kS);
  CHECK_FALSE(r.poll(kS - 1));
  CHECK(r.poll(kS));
  CHECK((reg(r, 0x0C, kS) & 0x90) == 0x90);
  // Alarm at 00:00:05, don't-care hour.
  set(r, 1, 0x05, kS);
  set(r, 3, 0x00, kS);
  set(r, 5, 0xC0, kS);
  set(r, 0x0B, 0x22, kS);
  CHECK_FALSE(r.poll(4 * kS));
  reg(r, 0x0C, 4 * kS);
  CHECK(r.poll(5 * kS));
  CHECK((reg(r, 0x0C, 5 * kS) & 0xA0) == 0xA0);
  CHECK_FALSE(r.poll(6 * kS));
}

TEST_CASE("rtc: NVRAM bytes and the NMI mask bit of the index port", "[rtc]") {
  Rtc r;
  r.reset(0, 0);
  r.set_nvram(0x15, 0x80);
  CHECK(reg(r, 0x15, 0) == 0x80);
  set(r, 0x40, 0xA5, 0);
  CHECK(reg(r, 0x40, 0) == 0xA5);
  r.write(0x70, 0x8F, 0);
  CHECK(r.nmi_masked());
  CHECK(r.read(0x71, 0) == 0);
  r.write(0x70, 0x0F, 0);
  CHECK_FALSE(r.nmi_masked());
}
