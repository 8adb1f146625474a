// The CMOS RTC and NVRAM (docs/guest-platform.md section 9; hv/devices/rtc.h), with interrupts
// off. The same checks bare (QEMU TCG: its mc146818 is the reference) and under hv:
//   time     the date and time read the safe way (UIP clear, read twice until equal), in
//            range; register D says valid; register A has the 32.768 kHz divider;
//   update   UIP rises before the update and falls with it, after roughly 244 us (judged under
//            hv; bare QEMU sometimes shows no UIP for seconds: printed); the seconds then
//            have moved by one; register C shows UF (read clears it);
//   format   the seconds in BCD and in binary agree; the hour in 12-hour mode with its PM bit
//            agrees with the 24-hour hour;
//   nvram    a byte written reads back; the extended memory size (0x30/0x31) and the memory
//            above 16 MiB (0x34/0x35) agree with the multiboot memory size.
#include "tests/guests/chipset_time.h"

const char guest_name[] = "rtc";

namespace {

uint8_t cmos(uint8_t r) {
  outb(0x70, r);
  return inb(0x71);
}
void cmos_set(uint8_t r, uint8_t v) {
  outb(0x70, r);
  outb(0x71, v);
}
unsigned bcd(uint8_t v) { return (v >> 4) * 10u + (v & 0xFu); }
bool is_bcd(uint8_t v) { return (v & 0xF) <= 9 && (v >> 4) <= 9; }

struct Time {
  uint8_t sec, min, hour, day, mon, year, century;
};
Time read_time() {
  Time a{}, b{};
  for (int i = 0; i < 10; i++) {
    for (uint32_t n = 0; n < 10000000 && (cmos(0x0A) & 0x80); n++) {
    }
    a = {cmos(0), cmos(2), cmos(4), cmos(7), cmos(8), cmos(9), cmos(0x32)};
    b = {cmos(0), cmos(2), cmos(4), cmos(7), cmos(8), cmos(9), cmos(0x32)};
    if (a.sec == b.sec && a.min == b.min && a.hour == b.hour && a.day == b.day) break;
  }
  return a;
}

}  // namespace

void guest_test() {
  const uint64_t hz = tsc_hz_from_pit();
  CHECK(hz != 0);
  if (!hz) return;
  const uint8_t b0 = cmos(0x0B);
  CHECK_EQ(b0 & 0x06, 0x02);  // BCD, 24 hours: what firmware leaves
  CHECK_EQ(cmos(0x0D) & 0x80, 0x80);
  CHECK_EQ(cmos(0x0A) & 0x70, 0x20);
  const Time t = read_time();
  CHECK(is_bcd(t.sec) && is_bcd(t.min) && is_bcd(t.hour) && is_bcd(t.day) && is_bcd(t.mon) && is_bcd(t.year));
  CHECK(bcd(t.sec) < 60 && bcd(t.min) < 60 && bcd(t.hour) < 24);
  CHECK(bcd(t.day) >= 1 && bcd(t.day) <= 31 && bcd(t.mon) >= 1 && bcd(t.mon) <= 12);
  CHECK(t.century == 0x20 || t.century == 0x19 || t.century == 0x21);
  gprintf("rtc: time: %x%x%x-%x%x-%x%x %x%x:%x%x:%x%x, register D valid, divider 32.768 kHz: ok\n", t.century, t.year >> 4,
          t.year & 15, t.mon >> 4, t.mon & 15, t.day >> 4, t.day & 15, t.hour >> 4, t.hour & 15, t.min >> 4, t.min & 15,
          t.sec >> 4, t.sec & 15);

  // The update: the seconds read the safe way, then UIP's rise and fall polled with one IN
  // per sample (the index stays at register A), so the 244 us window is not missed.
  cmos(0x0C);
  const uint8_t before = read_time().sec;
  uint64_t up = 0, rise = 0;
  bool rose = false, fell = false;
  outb(0x70, 0x0A);
  const uint64_t start = rdtsc();
  while (rdtsc() - start < 3 * hz) {
    if (inb(0x71) & 0x80) {
      rose = true;
      rise = rdtsc();
      break;
    }
  }
  if (rose) {
    while (rdtsc() - rise < hz) {
      if (!(inb(0x71) & 0x80)) {
        fell = true;
        up = rdtsc() - rise;
        break;
      }
    }
  }
  // Under hv UIP must be seen. Bare, QEMU 7.2 on this loaded machine sometimes shows no UIP
  // for seconds (its UIP depends on when its update timer runs): printed, then the seconds
  // change is awaited directly.
  const bool judge_uip = under_hv();
  if (judge_uip) CHECK(rose && fell);
  uint8_t after = cmos(0);
  if (!rose) {
    const uint64_t t0 = rdtsc();
    while (after == before && rdtsc() - t0 < 2 * hz) after = cmos(0);
    gprintf("rtc: update: UIP not observed (bare: not judged)\n");
  }
  const unsigned us = static_cast<unsigned>(div64(up * 1000000ull, hz));
  // Bare, windows are missed now and then (QEMU's thread is descheduled on this shared
  // machine): there the seconds only have to have moved.
  if (judge_uip) CHECK_EQ(bcd(after), (bcd(before) + 1) % 60);
  else CHECK(after != before);
  if (under_hv()) CHECK(us <= 2500);  // 244 us plus polling; bare the TSC is not stable enough to judge
  const uint8_t c1 = cmos(0x0C);
  const uint8_t c2 = cmos(0x0C);
  CHECK_EQ(c1 & 0x10, 0x10);
  CHECK_EQ(c2 & 0x10, 0);
  gprintf("rtc: update: UIP seen for ~%u us, seconds %x -> %x, register C UF set then cleared by the read: ok\n", us,
          before, after);

  // Binary and 12-hour formats.
  const Time bt = read_time();
  cmos_set(0x0B, static_cast<uint8_t>(b0 | 0x04));
  const uint8_t sec_bin = cmos(0);
  const uint8_t hour_bin = cmos(4);
  cmos_set(0x0B, static_cast<uint8_t>(b0 & ~0x06));  // BCD, 12 hours
  const uint8_t h12 = cmos(4);
  cmos_set(0x0B, b0);
  const unsigned s_bcd = bcd(bt.sec);
  CHECK(sec_bin == s_bcd || sec_bin == (s_bcd + 1) % 60);
  CHECK(hour_bin == bcd(bt.hour) || hour_bin == (bcd(bt.hour) + 1) % 24);
  const unsigned h = bcd(h12 & 0x7F);
  const bool pm = h12 & 0x80;
  CHECK(h >= 1 && h <= 12);
  CHECK_EQ(h % 12 + (pm ? 12 : 0), hour_bin);
  gprintf("rtc: format: seconds BCD 0x%x = binary %u, hour %u = 12-hour 0x%x: ok\n", bt.sec, sec_bin, hour_bin, h12);

  // NVRAM.
  const uint8_t saved = cmos(0x6E);
  cmos_set(0x6E, 0xA5);
  CHECK_EQ(cmos(0x6E), 0xA5);
  cmos_set(0x6E, 0x5A);
  CHECK_EQ(cmos(0x6E), 0x5A);
  cmos_set(0x6E, saved);
  const unsigned ext = cmos(0x30) | (cmos(0x31) << 8);
  const unsigned hi = cmos(0x34) | (cmos(0x35) << 8);
  const uint32_t top = ram_top();
  const unsigned want_ext = (top - 0x100000) / 1024 > 0xFFFF ? 0xFFFF : (top - 0x100000) / 1024;
  const unsigned want_hi = top > 0x1000000 ? (top - 0x1000000) >> 16 : 0;
  CHECK(near(ext, want_ext, 0, 1024));
  CHECK(near(hi, want_hi, 0, 16));
  gprintf("rtc: nvram: byte 0x6e reads back; extended memory %u KiB, above 16 MiB %u x 64 KiB (RAM top 0x%x): ok\n", ext, hi, top);
}
