// Device state for migration (the save/restore blocks of hv/devices/*, docs/migration.md): for
// each device, drive it into a state that differs from reset, save, restore into a fresh device,
// save again and compare; then check that both devices answer the guest the same from there on
// (what a missed field in both save and restore would not show by the comparison alone).
#include <catch2/catch.hpp>

#include <memory>

#include "hv/devices/acpi_pm.h"
#include "hv/devices/acpi_tables.h"
#include "hv/devices/fw_cfg.h"
#include "hv/devices/ioapic.h"
#include "hv/devices/pci_host.h"
#include "hv/devices/pic.h"
#include "hv/devices/pit.h"
#include "hv/devices/reset.h"
#include "hv/devices/rtc.h"
#include "hv/devices/vlapic.h"

using namespace hv;

namespace {

// save -> restore into `fresh` -> save: the two states are equal, and differ from `fresh`'s
// own state before the restore (the test would pass trivially otherwise).
template <typename Dev>
void round_trip(Dev& src, Dev& fresh) {
  auto a = std::make_unique<typename Dev::State>();
  auto before = std::make_unique<typename Dev::State>();
  auto b = std::make_unique<typename Dev::State>();
  src.save(*a);
  fresh.save(*before);
  REQUIRE_FALSE(*a == *before);
  fresh.restore(*a);
  fresh.save(*b);
  REQUIRE(*a == *b);
}

}  // namespace

TEST_CASE("vm_state: 8259 pair round trip", "[vm_state]") {
  PicPair p, q;
  p.reset();
  q.reset();
  p.write(0x20, 0x11);  // ICW1: edge, cascade, ICW4
  p.write(0x21, 0x30);  // ICW2: vectors 0x30..
  p.write(0x21, 0x04);
  p.write(0x21, 0x01);
  p.write(0x21, 0xF8);  // mask IRQ 3..7
  p.set_irq(1, true);
  round_trip(p, q);
  REQUIRE(q.read(0x21) == p.read(0x21));
  REQUIRE(q.irr(0) == p.irr(0));
  REQUIRE(q.intack() == p.intack());  // vector 0x31 from both
  REQUIRE(q.isr(0) == p.isr(0));
}

TEST_CASE("vm_state: PIT round trip keeps counting on the same clock", "[vm_state]") {
  Pit p, q;
  p.reset();
  q.reset();
  p.write(0x43, 0x34, 1000);  // ch0, lohi, mode 2
  p.write(0x40, 0x00, 1000);
  p.write(0x40, 0x10, 1000);  // 4096
  p.write(0x61, 0x01, 1000);  // gate 2
  round_trip(p, q);
  for (uint64_t t : {1500ull, 4000ull, 9000ull}) {
    REQUIRE(q.count(0, t) == p.count(0, t));
    REQUIRE(q.out(0, t) == p.out(0, t));
    REQUIRE(q.next_irq_tick(t) == p.next_irq_tick(t));
  }
  REQUIRE(q.read(0x61, 9000) == p.read(0x61, 9000));
}

TEST_CASE("vm_state: RTC round trip", "[vm_state]") {
  static Rtc r, s;
  r.reset(Rtc::to_seconds({2026, 11, 30, 13, 5, 59}), 0);
  s.reset(0, 0);
  r.set_nvram(0x40, 0x5A);
  r.write(0x70, 0x0B, 10);
  r.write(0x71, 0x46, 10);  // periodic interrupt on, binary, 24 h
  r.write(0x70, 0x0A, 10);
  r.write(0x71, 0x2C, 10);  // 16 Hz periodic rate
  round_trip(r, s);
  const uint64_t later = 3 * Rtc::kHz;
  for (uint8_t reg : {uint8_t{0x00}, uint8_t{0x02}, uint8_t{0x04}, uint8_t{0x0B}, uint8_t{0x40}}) {
    r.write(0x70, reg, later);
    s.write(0x70, reg, later);
    REQUIRE(s.read(0x71, later) == r.read(0x71, later));
  }
  REQUIRE(s.next_irq_tick(later) == r.next_irq_tick(later));
}

TEST_CASE("vm_state: IOAPIC round trip", "[vm_state]") {
  Ioapic a, b;
  a.reset();
  b.reset();
  Ioapic::Out out;
  a.write(0x00, 0x10 + 2 * 4, out);
  a.write(0x10, 0x0000A041, out);  // pin 4: vector 0x41, level, remote IRR off
  a.write(0x00, 0x11 + 2 * 4, out);
  a.write(0x10, 0x01000000, out);
  a.set_pin(4, true, out);  // delivered, remote IRR set
  round_trip(a, b);
  for (unsigned pin = 0; pin < Ioapic::kPins; pin++) REQUIRE(b.entry(pin) == a.entry(pin));
  Ioapic::Out oa, ob;
  a.eoi(0x41, oa);  // the line is still high: delivered again from both
  b.eoi(0x41, ob);
  REQUIRE(oa.count == ob.count);
  REQUIRE(oa.count == 1);
}

TEST_CASE("vm_state: local APIC round trip keeps the timer deadline and the IRR/ISR", "[vm_state]") {
  auto l = std::make_unique<Vlapic>();
  auto m = std::make_unique<Vlapic>();
  l->reset(1, 2'000'000, true);
  m->reset(3, 1'000'000, false);
  WriteEffect fx;
  REQUIRE(l->write(apic::kSvr, 0x1FF, 0, fx));
  REQUIRE(l->write(apic::kTpr, 0x20, 0, fx));
  REQUIRE(l->write(apic::kLvtTimer, 0x20000 | 0x40, 100, fx));  // periodic, vector 0x40
  REQUIRE(l->write(apic::kTimerDivide, 0xB, 100, fx));          // divide by 1
  REQUIRE(l->write(apic::kTimerInitial, 50'000, 100, fx));
  REQUIRE(l->accept(0x51, false));
  REQUIRE(l->accept(0x62, true));
  l->ack(static_cast<uint8_t>(l->deliverable()));  // 0x62 into the ISR
  l->accept_nmi();
  round_trip(*l, *m);
  REQUIRE(m->timer_deadline() == l->timer_deadline());
  REQUIRE(m->timer_deadline() != 0);
  REQUIRE(m->id() == 1);
  for (unsigned off = 0x20; off < 0x400; off += 0x10) {
    uint64_t a = 0, b = 0;
    const bool ra = l->read(off, 5000, a), rb = m->read(off, 5000, b);
    REQUIRE(ra == rb);
    REQUIRE(a == b);
  }
  REQUIRE(m->deliverable() == l->deliverable());
  REQUIRE(m->nmi_pending());
  const uint64_t t = l->timer_deadline() + 1;
  REQUIRE(m->timer_poll(t) == l->timer_poll(t));
  REQUIRE(m->timer_deadline() == l->timer_deadline());
}

TEST_CASE("vm_state: ACPI PM, PCI host and reset controls round trip", "[vm_state]") {
  AcpiPm a, b;
  a.reset();
  b.reset();
  a.write(acpi::kPm1aEvtPort + 2, 2, 0x0120);  // PM1_EN: power button, RTC
  a.write(acpi::kPm1aCntPort, 2, 0x0001);
  round_trip(a, b);
  REQUIRE(b.read(acpi::kPm1aEvtPort + 2, 2, 0, 1) == a.read(acpi::kPm1aEvtPort + 2, 2, 0, 1));
  REQUIRE(b.read(acpi::kPm1aCntPort, 2, 0, 1) == a.read(acpi::kPm1aCntPort, 2, 0, 1));

  PciHost p, q;
  p.reset();
  q.reset();
  p.write(0xCF8, 4, 0x80000008u);
  round_trip(p, q);
  REQUIRE(q.read(0xCF8, 4) == p.read(0xCF8, 4));
  REQUIRE(q.read(0xCFC, 4) == p.read(0xCFC, 4));

  ResetControl r, s;
  r.reset();
  s.reset();
  const char* why = nullptr;
  r.write(0x64, 0xD1, &why);  // write output port: waits for its data byte
  r.write(0x92, 0x00, &why);
  round_trip(r, s);
  REQUIRE(s.read(0x92) == r.read(0x92));
  REQUIRE(s.read(0x64) == r.read(0x64));
}

TEST_CASE("vm_state: fw_cfg keeps the guest's selector and offset", "[vm_state]") {
  static FwCfg f, g;
  FwCfg::Config c;
  c.ram_bytes = 32ull << 20;
  c.cpus = 2;
  c.args = "a=1 b=2";
  REQUIRE(f.init(c) == nullptr);
  REQUIRE(g.init(c) == nullptr);  // the target is built from the same configuration
  f.select(FwCfg::kCmdlineData);
  (void)f.read_data(2);  // two bytes into the command line
  round_trip(f, g);
  REQUIRE(g.read_data(4) == f.read_data(4));
}
