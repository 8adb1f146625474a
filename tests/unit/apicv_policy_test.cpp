// The hardware APIC path's pure rules (hv/apicv_policy.h) held against the register page
// (hv/devices/vlapic.h): what the CPU reads from the page when the MSR bitmap lets an x2APIC
// RDMSR through must be what hv's software path answers for the same MSR.
#include "hv/apicv_policy.h"

#include <catch2/catch.hpp>

using namespace hv;
using namespace hv::apic;

namespace {
constexpr uint64_t kTscKhz = 2'000'000;

// A LAPIC in x2APIC mode with something in every register the guest can set.
void busy_x2apic(Vlapic& l, uint32_t id) {
  l.reset(id, kTscKhz, true);
  l.set_mode(true, true);
  WriteEffect fx;
  REQUIRE(l.write(kSvr, 0x1FF, 0, fx));
  REQUIRE(l.write(kTpr, 0x20, 0, fx));
  REQUIRE(l.write(kLvtTimer, 0x20031, 0, fx));
  REQUIRE(l.write(kLvtLint0, 0x700, 0, fx));
  REQUIRE(l.write(kLvtError, 0xFE, 0, fx));
  REQUIRE(l.write(kTimerDivide, 0x3, 0, fx));
  REQUIRE(l.write(kTimerInitial, 123456, 0, fx));
  // ICR with a destination in its upper half (the write also sends: ignore the message).
  REQUIRE(l.write(kIcrLow, (uint64_t{3} << 32) | 0x4041, 0, fx));
  l.accept(0x91, false);
  l.accept(0x35, true);
  l.ack(0x91);
  l.accept(0x77, false);
}
uint64_t page64(const Vlapic& l, unsigned off) {
  return static_cast<uint64_t>(l.page()[off / 4]) | static_cast<uint64_t>(l.page()[off / 4 + 1]) << 32;
}
}  // namespace

TEST_CASE("apicv: every x2APIC read the CPU serves from the page is what hv would answer", "[apicv]") {
  Vlapic l;
  busy_x2apic(l, 0x23);
  unsigned through = 0;
  for (uint32_t msr = kX2apicMsrBase; msr <= kX2apicMsrLast; msr++) {
    const unsigned off = (msr - kX2apicMsrBase) << 4;
    uint64_t sw = 0;
    const bool ok = l.read(off, 1000, sw);
    if (apicv::x2apic_read_virtualized(msr)) {
      INFO("msr 0x" << std::hex << msr);
      through++;
      REQUIRE(ok);               // never a register hv would #GP
      CHECK(page64(l, off) == sw);  // the CPU's 8-byte read at (msr & 0xFF) << 4
    } else if (ok) {
      // Kept exiting although readable: only the current count, which is computed from time.
      CHECK(off == kTimerCurrent);
    }
  }
  // ID, version, TPR, PPR, LDR, SVR, 8 ISR, 8 TMR, 8 IRR, ESR, ICR, 6 LVT, initial, divide.
  CHECK(through == 6 + 24 + 1 + 1 + 6 + 2);
}

TEST_CASE("apicv: x2APIC writes the CPU virtualizes are TPR, EOI and SELF_IPI only", "[apicv]") {
  unsigned n = 0, guarded = 0;
  for (uint32_t msr = kX2apicMsrBase - 1; msr <= kX2apicMsrLast + 1; msr++) {
    if (apicv::x2apic_write_virtualized(msr, false)) n++;
    if (apicv::x2apic_write_virtualized(msr, true)) guarded++;
  }
  CHECK(n == 3);
  CHECK(guarded == 2);
  CHECK(apicv::x2apic_write_virtualized(0x808, false));
  CHECK(apicv::x2apic_write_virtualized(0x80B, false));
  CHECK(apicv::x2apic_write_virtualized(0x83F, false));
  CHECK(apicv::x2apic_write_virtualized(0x808, true));
  CHECK(apicv::x2apic_write_virtualized(0x80B, true));
  CHECK(!apicv::x2apic_write_virtualized(0x83F, true));  // the guard: SELF_IPI exits
  CHECK(!apicv::x2apic_write_virtualized(0x830, false));  // the ICR sends: hv must see it
  CHECK(!apicv::x2apic_read_virtualized(0x839));   // current count
  CHECK(!apicv::x2apic_read_virtualized(0x80B));   // EOI is write-only (#GP)
  CHECK(!apicv::x2apic_read_virtualized(0x82F));   // no CMCI LVT in hv's version register
}

TEST_CASE("apicv: guest interrupt status from the page", "[apicv]") {
  Vlapic l;
  l.reset(0, kTscKhz, false);
  WriteEffect fx;
  REQUIRE(l.write(kSvr, 0x1FF, 0, fx));
  CHECK(apicv::guest_interrupt_status(l) == 0);
  l.accept(0x45, false);
  l.ack(0x45);
  l.accept(0x61, false);
  l.accept(0x30, false);
  CHECK(apicv::guest_interrupt_status(l) == (0x45 << 8 | 0x61));
  // Posted mode: nothing reaches RVI before the owner folds the PIR.
  l.set_posted(true);
  l.accept(0xA0, false);
  CHECK((apicv::guest_interrupt_status(l) & 0xFF) == 0x61);
  l.sync_posted();
  CHECK((apicv::guest_interrupt_status(l) & 0xFF) == 0xA0);
}

// An exit during event delivery while the CPU delivered a virtual interrupt (hv/apicv_policy.h,
// abandoned_virtual_interrupt): Bochs 2.7 names a stale event there; the state decides.
namespace {
constexpr uint32_t kValid = 1u << 31;
constexpr uint32_t kStalePf = kValid | (1u << 11) | (3u << 8) | 14;  // #PF, error code: what Bochs reported
apicv::VectoringCheck abandoned_0x30() {
  apicv::VectoringCheck c;
  c.vectoring = kStalePf;
  c.if_set = true;
  c.svi = 0x30;
  c.svi_delivered = true;
  return c;
}
}  // namespace

TEST_CASE("apicv: a stale IDT-vectoring report during a virtual interrupt's delivery undoes that delivery", "[apicv]") {
  apicv::VectoringCheck c = abandoned_0x30();
  CHECK(apicv::abandoned_virtual_interrupt(c) == 0x30);
  // A stale INT n or NMI the same way.
  c.vectoring = kValid | (4u << 8) | 0x80;
  CHECK(apicv::abandoned_virtual_interrupt(c) == 0x30);
  c.vectoring = kValid | (2u << 8) | 2;
  CHECK(apicv::abandoned_virtual_interrupt(c) == 0x30);
  // A real CPU's report (external interrupt SVI) is undone too: the same outcome as re-injecting
  // it, and possible with IF = 0 (Bochs delivers there; an injection would fail the entry).
  c.vectoring = kValid | 0x30;
  c.if_set = false;
  CHECK(apicv::abandoned_virtual_interrupt(c) == 0x30);
  // The exit's linear address in the IDT entry of the interrupt decides, whatever IF says.
  c = abandoned_0x30();
  c.if_set = false;
  c.idt_vector = 0x30;
  CHECK(apicv::abandoned_virtual_interrupt(c) == 0x30);
}

TEST_CASE("apicv: an IDT-vectoring report that can be genuine stands", "[apicv]") {
  apicv::VectoringCheck c = abandoned_0x30();
  SECTION("IF = 0 or a shadow without an IDT address: the guest may be inside the handler") {
    c.if_set = false;
    CHECK(apicv::abandoned_virtual_interrupt(c) == -1);
    c.if_set = true;
    c.shadow = true;
    CHECK(apicv::abandoned_virtual_interrupt(c) == -1);
  }
  SECTION("SVI was in the ISR before this run (the guest is inside its handler)") {
    c.svi_delivered = false;
    CHECK(apicv::abandoned_virtual_interrupt(c) == -1);
    c.vectoring = kValid | 0x30;  // hv's own re-injection of 0x30, genuinely interrupted
    CHECK(apicv::abandoned_virtual_interrupt(c) == -1);
    c.idt_vector = 0x30;
    CHECK(apicv::abandoned_virtual_interrupt(c) == -1);
  }
  SECTION("nothing in service") {
    c.svi = 0;
    CHECK(apicv::abandoned_virtual_interrupt(c) == -1);
  }
  SECTION("the access was the IDT entry of the reported event") {
    c.idt_vector = 14;
    CHECK(apicv::abandoned_virtual_interrupt(c) == -1);
  }
  SECTION("no event at all") {
    c.vectoring = 0;
    CHECK(apicv::abandoned_virtual_interrupt(c) == -1);
  }
}

TEST_CASE("apicv: a vector delivered since the entry is told from the IRR/ISR words", "[apicv]") {
  uint32_t irr0[8] = {}, isr0[8] = {}, irr1[8] = {}, isr1[8] = {};
  const uint8_t v = 0x30;  // word 1, bit 16
  irr0[1] = 1u << 16;      // pending at the entry
  isr1[1] = 1u << 16;      // in service now, IRR clear: the CPU delivered it
  CHECK(apicv::svi_delivered_this_run(v, irr0, isr0, irr1, isr1));
  // Already in service at the entry and no new request taken: not delivered in this run.
  isr0[1] = 1u << 16;
  irr0[1] = 0;
  CHECK_FALSE(apicv::svi_delivered_this_run(v, irr0, isr0, irr1, isr1));
  // In service at the entry, pending too, and the request taken since (EOI then re-delivery).
  irr0[1] = 1u << 16;
  CHECK(apicv::svi_delivered_this_run(v, irr0, isr0, irr1, isr1));
  // Still pending: not taken.
  irr1[1] = 1u << 16;
  CHECK_FALSE(apicv::svi_delivered_this_run(v, irr0, isr0, irr1, isr1));
  // Not in service now: nothing to undo.
  isr1[1] = 0;
  irr1[1] = 0;
  CHECK_FALSE(apicv::svi_delivered_this_run(v, irr0, isr0, irr1, isr1));
  // A self-IPI raised and delivered within the run: neither bit at the entry.
  uint32_t none[8] = {};
  isr1[1] = 1u << 16;
  CHECK(apicv::svi_delivered_this_run(v, none, none, none, isr1));
}

// The TPR threshold without virtual-interrupt delivery (hv.apicv-access=tpr): set exactly while
// the TPR alone holds the highest waiting vector back, to that vector's class.
TEST_CASE("apicv: TPR threshold names the class the TPR holds back", "[apicv]") {
  Vlapic l;
  l.reset(0, kTscKhz, false);
  WriteEffect fx;
  REQUIRE(l.write(kSvr, 0x1FF, 0, fx));
  CHECK(apicv::tpr_threshold(l) == 0);  // nothing waits
  l.accept(0x45, false);
  CHECK(apicv::tpr_threshold(l) == 0);  // deliverable now: hv injects, no exit needed
  REQUIRE(l.write(kTpr, 0x50, 0, fx));
  CHECK(l.deliverable() < 0);
  CHECK(apicv::tpr_threshold(l) == 4);  // a TPR write below class 4 must exit
  REQUIRE(l.write(kTpr, 0x40, 0, fx));  // the same class: still held back
  CHECK(apicv::tpr_threshold(l) == 4);
  REQUIRE(l.write(kTpr, 0x3F, 0, fx));  // below: deliverable, as the exit would find
  CHECK(l.deliverable() == 0x45);
  CHECK(apicv::tpr_threshold(l) == 0);
  // The ISR holds it back (its EOI exits): no threshold, whatever the TPR.
  REQUIRE(l.write(kTpr, 0, 0, fx));
  l.accept(0x80, false);
  l.ack(0x80);
  l.accept(0x61, false);
  REQUIRE(l.write(kTpr, 0x70, 0, fx));
  CHECK(apicv::tpr_threshold(l) == 0);
  l.eoi(fx);  // ISR empty: now only the TPR holds 0x61
  CHECK(apicv::tpr_threshold(l) == 6);
}

// The IF = 0 guard (hv/apicv_policy.h): every EOI exits exactly while an EOI inside the
// guest's run could make a waiting vector recognized.
TEST_CASE("apicv: the IF = 0 guard makes EOIs exit while a vector waits behind another", "[apicv]") {
  Vlapic l;
  l.reset(0, kTscKhz, true);
  l.set_mode(true, true);
  WriteEffect fx;
  REQUIRE(l.write(kSvr, 0x1FF, 0, fx));
  const auto words = [&](uint32_t irr[8], uint32_t isr[8]) {
    for (unsigned i = 0; i < 8; i++) {
      irr[i] = l.page()[(kIrr + 16 * i) / 4];
      isr[i] = l.page()[(kIsr + 16 * i) / 4];
    }
  };
  uint32_t irr[8], isr[8];
  words(irr, isr);
  CHECK(!apicv::vector_waits_behind(irr, isr));  // nothing at all
  l.accept(0xEC, false);
  words(irr, isr);
  CHECK(!apicv::vector_waits_behind(irr, isr));  // one vector, nothing in service: delivered at entry
  l.ack(0xEC);
  words(irr, isr);
  CHECK(!apicv::vector_waits_behind(irr, isr));  // in service only: its EOI makes nothing recognized
  l.accept(0x31, false);
  words(irr, isr);
  CHECK(apicv::vector_waits_behind(irr, isr));   // 0x31 waits for 0xEC's EOI
  WriteEffect eoi_fx;
  l.eoi(eoi_fx);
  words(irr, isr);
  CHECK(!apicv::vector_waits_behind(irr, isr));
  l.accept(0xFD, false);
  words(irr, isr);
  CHECK(apicv::vector_waits_behind(irr, isr));   // 0x31 waits behind 0xFD, delivered at entry
  // Words other than the first count too (vectors 0x31 and 0xFD are in words 1 and 7).
  CHECK(irr[1] != 0);
  CHECK(irr[7] != 0);
  // The bitmap: the TMR alone, or every vector.
  CHECK(apicv::eoi_exit_quad(0x10, false) == 0x10);
  CHECK(apicv::eoi_exit_quad(0x10, true) == ~uint64_t{0});
}
