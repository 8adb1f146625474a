// The IOAPIC (hv/devices/ioapic.h): registers, redirection entries, edge and level delivery,
// remote IRR and EOI.
#include <catch2/catch.hpp>

#include "hv/devices/ioapic.h"

using hv::Ioapic;

namespace {
uint32_t rd(Ioapic& io, uint8_t reg) {
  Ioapic::Out o;
  io.write(0x00, reg, o);
  return io.read(0x10);
}
void wr(Ioapic& io, uint8_t reg, uint32_t v, Ioapic::Out& o) {
  io.write(0x00, reg, o);
  io.write(0x10, v, o);
}
}  // namespace

TEST_CASE("ioapic: ID, version, arbitration, entries reset masked and read back", "[ioapic]") {
  Ioapic io;
  io.reset();
  Ioapic::Out o;
  CHECK(rd(io, 0x01) == 0x00170011u);
  wr(io, 0x00, 0x0F000000, o);
  CHECK(rd(io, 0x00) == 0x0F000000u);
  CHECK(rd(io, 0x02) == 0x0F000000u);
  wr(io, 0x01, 0, o);
  CHECK(rd(io, 0x01) == 0x00170011u);
  for (unsigned pin = 0; pin < 24; pin++) CHECK(rd(io, static_cast<uint8_t>(0x10 + 2 * pin)) == 0x10000u);
  wr(io, 0x10 + 2 * 5, 0xFFFFFFFF, o);
  wr(io, 0x11 + 2 * 5, 0xFFFFFFFF, o);
  CHECK(rd(io, 0x10 + 2 * 5) == 0x1AFFFu);  // delivery status and remote IRR read-only
  CHECK(rd(io, 0x11 + 2 * 5) == 0xFF000000u);
  CHECK(io.read(0x00) == 0x11 + 2 * 5);
  CHECK(o.count == 0);
}

TEST_CASE("ioapic: edge entries deliver on the asserting edge while unmasked", "[ioapic]") {
  Ioapic io;
  io.reset();
  Ioapic::Out o;
  wr(io, 0x10 + 4, 0x00000830, o);  // pin 2: vector 0x30, fixed, logical
  wr(io, 0x11 + 4, 0x03000000, o);
  io.set_pin(2, true, o);
  REQUIRE(o.count == 1);
  CHECK(o.msg[0].vector == 0x30);
  CHECK(o.msg[0].logical);
  CHECK(o.msg[0].dest == 3);
  CHECK_FALSE(o.msg[0].level);
  io.set_pin(2, true, o);
  CHECK(o.count == 1);  // no new edge
  io.set_pin(2, false, o);
  wr(io, 0x10 + 4, 0x00010830, o);  // masked: the edge is lost
  io.set_pin(2, true, o);
  io.set_pin(2, false, o);
  wr(io, 0x10 + 4, 0x00000830, o);
  CHECK(o.count == 1);
}

TEST_CASE("ioapic: level entries, remote IRR, EOI redelivery, unmask of an asserted line", "[ioapic]") {
  Ioapic io;
  io.reset();
  Ioapic::Out o;
  wr(io, 0x10 + 2 * 9, 0x0000A141, o);  // pin 9: vector 0x41, lowest priority, level, active low
  io.set_pin(9, true, o);
  REQUIRE(o.count == 1);
  CHECK(o.msg[0].level);
  CHECK(o.msg[0].mode == hv::DeliveryMode::kLowestPriority);
  CHECK((io.entry(9) & (1u << 14)) != 0);
  io.set_pin(9, true, o);
  CHECK(o.count == 1);  // remote IRR holds it back
  io.eoi(0x42, o);
  CHECK(o.count == 1);  // another vector
  io.eoi(0x41, o);
  CHECK(o.count == 2);  // still asserted: again
  io.set_pin(9, false, o);
  io.eoi(0x41, o);
  CHECK(o.count == 2);
  CHECK((io.entry(9) & (1u << 14)) == 0);
  wr(io, 0x10 + 2 * 9, 0x0001A141, o);  // masked
  io.set_pin(9, true, o);
  CHECK(o.count == 2);
  wr(io, 0x10 + 2 * 9, 0x0000A141, o);  // unmask: delivered now
  CHECK(o.count == 3);
  wr(io, 0x10 + 2 * 9, 0x00002141, o);  // switched to edge: remote IRR cleared
  CHECK((io.entry(9) & (1u << 14)) == 0);
}
