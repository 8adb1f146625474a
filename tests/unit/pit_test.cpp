// The 8254 PIT and port 0x61 (hv/devices/pit.h) on fake time (ticks of 1.193182 MHz).
#include <catch2/catch.hpp>

#include "hv/devices/pit.h"

using hv::Pit;

namespace {
uint16_t latch_read(Pit& p, unsigned ch, uint64_t now) {
  p.write(0x43, static_cast<uint8_t>(ch << 6), now);  // counter latch
  const uint8_t lo = p.read(static_cast<uint16_t>(0x40 + ch), now + 5);
  const uint8_t hi = p.read(static_cast<uint16_t>(0x40 + ch), now + 9);  // the latch holds
  return static_cast<uint16_t>(lo | (hi << 8));
}
}  // namespace

TEST_CASE("pit: mode 2 on channel 0 counts down, reloads, and edges IRQ0 each period", "[pit]") {
  Pit p;
  p.reset();
  p.write(0x43, 0x34, 1000);  // ch0, lohi, mode 2
  p.write(0x40, 0xE8, 1000);
  p.write(0x40, 0x03, 1000);  // 1000
  CHECK(latch_read(p, 0, 1000) == 1000);
  CHECK(latch_read(p, 0, 1400) == 600);
  CHECK(latch_read(p, 0, 1999) == 1);
  CHECK(latch_read(p, 0, 2000) == 1000);
  CHECK_FALSE(p.out(0, 1999));
  CHECK(p.out(0, 2000));
  CHECK(p.next_irq_tick(1500) == 2000);
  CHECK_FALSE(p.poll(1999));
  CHECK(p.poll(2000));
  CHECK_FALSE(p.poll(2500));
  CHECK(p.next_irq_tick(2500) == 3000);
  CHECK(p.poll(10500));  // missed periods coalesce into one edge
  CHECK_FALSE(p.poll(10999));
  CHECK(p.poll(11000));
}

TEST_CASE("pit: channel 2 mode 0 through port 0x61: gate, OUT2 in bit 5", "[pit]") {
  Pit p;
  p.reset();
  p.write(0x61, 0x00, 0);
  p.write(0x43, 0xB0, 0);  // ch2, lohi, mode 0
  p.write(0x42, 0x10, 0);
  p.write(0x42, 0x27, 0);  // 10000
  CHECK((p.read(0x61, 100) & 0x20) == 0);
  CHECK(p.count(2, 5000) == 10000);  // gate low: not counting
  p.write(0x61, 0x01, 5000);        // gate on
  CHECK(p.count(2, 6000) == 9000);
  CHECK((p.read(0x61, 14999) & 0x20) == 0);
  CHECK((p.read(0x61, 15000) & 0x20) == 0x20);
  CHECK((p.read(0x61, 15000) & 0x01) == 0x01);
  CHECK(p.count(2, 15001) == 0xFFFF);  // wraps on
  // Gate low pauses mode 0.
  p.write(0x43, 0xB0, 20000);
  p.write(0x42, 0x64, 20000);
  p.write(0x42, 0x00, 20000);  // 100
  p.write(0x61, 0x00, 20050);
  CHECK(p.count(2, 30000) == 50);
  p.write(0x61, 0x01, 30000);
  CHECK(p.count(2, 30049) == 1);
  CHECK(p.out(2, 30050));
  // The refresh toggle flips every 18 ticks.
  CHECK(((p.read(0x61, 0) ^ p.read(0x61, 18)) & 0x10) == 0x10);
}

TEST_CASE("pit: mode 3 square wave, access modes, BCD", "[pit]") {
  Pit p;
  p.reset();
  p.write(0x43, 0x36, 0);  // ch0 lohi mode 3
  p.write(0x40, 100, 0);
  p.write(0x40, 0, 0);
  CHECK(p.out(0, 49));
  CHECK_FALSE(p.out(0, 50));
  CHECK(p.out(0, 100));
  CHECK(p.count(0, 10) == 80);
  CHECK(p.poll(100));
  // LSB only, MSB only.
  p.write(0x43, 0x10, 0);  // ch0 LSB mode 0
  p.write(0x40, 0x50, 0);
  CHECK(p.read(0x40, 0x10) == 0x40);
  p.write(0x43, 0x20, 0);  // ch0 MSB mode 0
  p.write(0x40, 0x02, 0);
  CHECK(p.count(0, 0) == 0x200);
  CHECK(p.read(0x40, 0x100) == 0x01);
  // BCD: 100 in BCD counts 100 decimal ticks and shows BCD digits.
  p.write(0x43, 0x31, 0);  // lohi mode 0 BCD
  p.write(0x40, 0x00, 0);
  p.write(0x40, 0x01, 0);
  CHECK(p.count(0, 1) == 0x0099);
  CHECK(p.count(0, 100) == 0x0000);
  CHECK(p.out(0, 100));
  CHECK(p.count(0, 101) == 0x9999);
}

TEST_CASE("pit: read-back: status byte and count latches", "[pit]") {
  Pit p;
  p.reset();
  p.write(0x43, 0x30, 0);  // ch0 lohi mode 0
  // Status right after the control word: OUT low, null count.
  p.write(0x43, 0xE2, 0);  // read-back status of ch0
  CHECK(p.read(0x40, 0) == 0x70);
  p.write(0x40, 0x00, 10);
  p.write(0x40, 0x10, 10);  // 4096
  p.write(0x43, 0xC2, 20);  // count and status
  CHECK(p.read(0x40, 500) == 0x30);  // OUT low, count loaded, lohi, mode 0
  CHECK(p.read(0x40, 500) == 0xF6);  // 4096 - 10 = 0x0FF6 latched at tick 20
  CHECK(p.read(0x40, 500) == 0x0F);
  p.write(0x43, 0xE2, 5000);
  CHECK((p.read(0x40, 5000) & 0x80) == 0x80);  // OUT high after terminal count
  // A second latch before the read is ignored.
  p.write(0x43, 0x00, 100);
  p.write(0x43, 0x00, 200);
  CHECK(p.read(0x40, 300) == static_cast<uint8_t>(static_cast<uint16_t>(4096 - 90)));
}
