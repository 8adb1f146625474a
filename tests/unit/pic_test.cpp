// The 8259A pair (hv/devices/pic.h): initialization, masks, priorities, EOI forms, cascade,
// edge and level inputs, spurious interrupts, poll, auto-EOI, special mask mode.
#include <catch2/catch.hpp>

#include "hv/devices/pic.h"

using hv::PicPair;

namespace {
// The BIOS/Linux sequence: ICW1 edge+cascade+ICW4, vector bases, cascade on IR2, 8086 mode.
void init(PicPair& p, uint8_t icw4 = 0x01) {
  p.write(0x20, 0x11);
  p.write(0x21, 0x20);
  p.write(0x21, 0x04);
  p.write(0x21, icw4);
  p.write(0xA0, 0x11);
  p.write(0xA1, 0x28);
  p.write(0xA1, 0x02);
  p.write(0xA1, icw4);
  p.write(0x21, 0x00);
  p.write(0xA1, 0x00);
}
void pulse(PicPair& p, unsigned irq) {
  p.set_irq(irq, true);
  p.set_irq(irq, false);
}
}  // namespace

TEST_CASE("pic: init sequence sets vector bases; ICW1 clears masks and requests", "[pic]") {
  PicPair p;
  p.reset();
  init(p);
  p.write(0x21, 0xFB);
  CHECK(p.read(0x21) == 0xFB);
  pulse(p, 0);
  CHECK_FALSE(p.output());  // masked
  p.write(0x21, 0x00);  // unmask all: the edge latched while masked comes through
  CHECK(p.output());
  CHECK(p.intack() == 0x20);
  CHECK(p.isr(0) == 0x01);
  p.write(0x20, 0x11);  // re-init: ISR and IMR cleared
  CHECK(p.isr(0) == 0);
  p.write(0x21, 0x40);
  p.write(0x21, 0x04);
  p.write(0x21, 0x01);
  CHECK(p.read(0x21) == 0x00);
  pulse(p, 1);
  CHECK(p.intack() == 0x41);
}

TEST_CASE("pic: priority, nesting and EOI forms", "[pic]") {
  PicPair p;
  p.reset();
  init(p);
  pulse(p, 3);
  pulse(p, 1);
  CHECK(p.intack() == 0x21);  // IRQ1 first
  CHECK_FALSE(p.output());    // IRQ3 is lower than IRQ1 in service
  pulse(p, 0);
  CHECK(p.output());          // IRQ0 is higher: nests
  CHECK(p.intack() == 0x20);
  CHECK(p.isr(0) == 0x03);
  p.write(0x20, 0x20);        // non-specific EOI: the highest (IRQ0)
  CHECK(p.isr(0) == 0x02);
  p.write(0x20, 0x61);        // specific EOI IRQ1
  CHECK(p.isr(0) == 0x00);
  CHECK(p.intack() == 0x23);
  // OCW3 reads: IRR then ISR.
  pulse(p, 5);
  p.write(0x20, 0x0A);
  CHECK(p.read(0x20) == 0x20);
  p.write(0x20, 0x0B);
  CHECK(p.read(0x20) == 0x08);
}

TEST_CASE("pic: cascade through IRQ2, slave EOI, spurious 7 and 15", "[pic]") {
  PicPair p;
  p.reset();
  init(p);
  pulse(p, 12);
  CHECK(p.irr(0) == 0x04);
  CHECK(p.output());
  CHECK(p.intack() == 0x2C);
  CHECK(p.isr(0) == 0x04);
  CHECK(p.isr(1) == 0x10);
  p.write(0xA0, 0x20);
  p.write(0x20, 0x20);
  CHECK(p.isr(0) == 0);
  CHECK(p.isr(1) == 0);
  // Nothing pending at INTA: spurious IRQ 7 on the master, ISR untouched.
  CHECK(p.intack() == 0x27);
  CHECK(p.isr(0) == 0);
  // A level request on the slave that vanishes before INTA: spurious.
  p.write(0x4D1, 0x02);  // IRQ9 level
  CHECK(p.read(0x4D1) == 0x02);
  p.set_irq(9, true);
  CHECK(p.output());
  p.set_irq(9, false);
  CHECK_FALSE(p.output());
  CHECK(p.intack() == 0x27);  // the master saw nothing either
  p.set_irq(9, true);
  CHECK(p.intack() == 0x29);
  p.write(0xA0, 0x20);
  p.write(0x20, 0x20);
  CHECK(p.output());  // level still high: requests again
  p.set_irq(9, false);
  CHECK_FALSE(p.output());
}

TEST_CASE("pic: edge latch, ELCR masks, masked level", "[pic]") {
  PicPair p;
  p.reset();
  init(p);
  p.write(0x4D0, 0xFF);
  CHECK(p.read(0x4D0) == 0xF8);  // IRQ 0-2 always edge
  p.write(0x4D1, 0xFF);
  CHECK(p.read(0x4D1) == 0xDE);
  p.write(0x4D0, 0x00);
  pulse(p, 4);
  CHECK(p.irr(0) == 0x10);  // the edge stays latched after the line dropped
  p.set_irq(4, true);       // still high: no new edge after the ack
  CHECK(p.intack() == 0x24);
  p.write(0x20, 0x20);
  CHECK_FALSE(p.output());
  p.set_irq(4, false);
  p.set_irq(4, true);
  CHECK(p.output());
}

TEST_CASE("pic: poll command, auto-EOI with rotation, special mask, rotate on EOI", "[pic]") {
  PicPair p;
  p.reset();
  init(p);
  pulse(p, 6);
  p.write(0x20, 0x0C);
  CHECK(p.read(0x20) == 0x86);
  CHECK(p.isr(0) == 0x40);
  p.write(0x20, 0x0C);
  CHECK(p.read(0x20) == 0x00);  // nothing pending
  p.write(0x20, 0x20);

  init(p, 0x03);  // auto-EOI
  pulse(p, 3);
  CHECK(p.intack() == 0x23);
  CHECK(p.isr(0) == 0);
  p.write(0x20, 0x80);  // rotate in auto-EOI mode
  pulse(p, 3);
  CHECK(p.intack() == 0x23);  // IRQ3 now lowest
  pulse(p, 3);
  pulse(p, 5);
  CHECK(p.intack() == 0x25);  // 4 is the highest, then 5, ... 3 last

  init(p);
  pulse(p, 1);
  CHECK(p.intack() == 0x21);
  pulse(p, 5);
  CHECK_FALSE(p.output());
  p.write(0x21, 0x02);  // mask IRQ1 and enter special mask mode
  p.write(0x20, 0x68);
  CHECK(p.output());    // IRQ5 now gets through
  CHECK(p.intack() == 0x25);
  p.write(0x20, 0x48);  // leave special mask mode
  p.write(0x20, 0x65);
  p.write(0x20, 0xA0);  // rotate on non-specific EOI: IRQ1 becomes lowest
  CHECK(p.isr(0) == 0);
  p.write(0x21, 0x00);
  pulse(p, 1);
  pulse(p, 2 + 1);
  CHECK(p.intack() == 0x23);  // 2 is the highest now, then 3; 1 is last
  p.write(0x20, 0xC4);        // set priority: IRQ4 lowest -> IRQ5 highest
  p.write(0x20, 0x20);
  CHECK(p.intack() == 0x21);
}
