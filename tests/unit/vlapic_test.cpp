// The virtual local APIC's register and priority logic (hv/devices/vlapic.h), host-side.
#include "hv/devices/vlapic.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

#include "hv/cpuid_policy.h"
#include "progress_wait.h"

using namespace hv;
using namespace hv::apic;

namespace {
constexpr uint64_t kTscKhz = 2'000'000;  // 2 GHz: 2 TSC cycles per timer tick at divide 1

Vlapic& fresh(Vlapic& l, uint32_t id = 0) {
  l.reset(id, kTscKhz, true);
  WriteEffect fx;
  REQUIRE(l.write(kSvr, 0x1FF, 0, fx));
  return l;
}
uint64_t rd(const Vlapic& l, unsigned off, uint64_t now = 0) {
  uint64_t v = 0;
  REQUIRE(l.read(off, now, v));
  return v;
}
}  // namespace

TEST_CASE("vlapic: reset state and version", "[vlapic]") {
  Vlapic l;
  l.reset(3, kTscKhz, false);
  CHECK(rd(l, kId) == 3u << 24);
  CHECK(rd(l, kVersion) == kVersionValue);
  CHECK(!l.sw_enabled());
  CHECK((rd(l, kLvtTimer) & kLvtMasked) != 0);
  CHECK(rd(l, kDfr) == 0xFFFFFFFFu);
  WriteEffect fx;
  // Software-disabled: LVT masks stay set.
  REQUIRE(l.write(kLvtTimer, 0x30, 0, fx));
  CHECK((rd(l, kLvtTimer) & kLvtMasked) != 0);
}

TEST_CASE("vlapic: priorities, TPR/PPR, ack and EOI", "[vlapic]") {
  Vlapic l;
  fresh(l);
  CHECK(l.deliverable() == -1);
  l.accept(0x50, false);
  l.accept(0x80, false);
  l.accept(0x61, true);
  CHECK(l.deliverable() == 0x80);
  l.ack(0x80);
  CHECK(l.ppr() == 0x80);
  CHECK(l.deliverable() == -1);  // 0x61 is below the in-service class
  WriteEffect fx;
  REQUIRE(l.write(kEoi, 0, 0, fx));
  CHECK(fx.eoi_level_vector == -1);
  CHECK(l.deliverable() == 0x61);
  l.ack(0x61);
  WriteEffect fx2;
  l.write(kEoi, 0, 0, fx2);
  CHECK(fx2.eoi_level_vector == 0x61);  // level-triggered: the IOAPIC hears of it
  // TPR masks its class and below.
  l.set_tpr(0x50);
  CHECK(l.deliverable() == -1);
  l.set_tpr(0x4F);
  CHECK(l.deliverable() == 0x50);
  // Illegal vectors are refused and reported in ESR after a write.
  CHECK(!l.accept(5, false));
  WriteEffect fx3;
  l.write(kEsr, 0, 0, fx3);
  CHECK((rd(l, kEsr) & kEsrReceiveIllegalVector) != 0);
}

TEST_CASE("vlapic: ICR writes become messages", "[vlapic]") {
  Vlapic l;
  fresh(l, 1);
  WriteEffect fx;
  REQUIRE(l.write(kIcrHigh, 2u << 24, 0, fx));
  REQUIRE(l.write(kIcrLow, 0x4000 | 0x0800 | 0x45, 0, fx));  // logical, assert, vector 0x45
  REQUIRE(fx.send);
  CHECK(fx.msg.dest == 2);
  CHECK(fx.msg.logical);
  CHECK(fx.msg.vector == 0x45);
  CHECK(fx.msg.mode == DeliveryMode::kFixed);
  WriteEffect bad;
  l.write(kIcrLow, 0x4000 | 3, 0, bad);  // vector 3: not sent, ESR
  CHECK(!bad.send);
}

TEST_CASE("vlapic: destinations (physical, flat, cluster, x2APIC)", "[vlapic]") {
  Vlapic l;
  fresh(l, 5);
  CHECK(l.matches_physical(5, false));
  CHECK(l.matches_physical(0xFF, false));
  CHECK(!l.matches_physical(4, false));
  WriteEffect fx;
  l.write(kLdr, 0x04u << 24, 0, fx);
  CHECK(l.matches_logical(0x04, false));  // flat
  CHECK(l.matches_logical(0x06, false));
  CHECK(!l.matches_logical(0x08, false));
  l.write(kDfr, 0x0FFFFFFF, 0, fx);        // cluster
  l.write(kLdr, 0x21u << 24, 0, fx);       // cluster 2, member 1
  CHECK(l.matches_logical(0x23, false));
  CHECK(!l.matches_logical(0x31, false));
  l.set_mode(true, true);
  CHECK(l.ldr() == ((5u >> 4) << 16 | 1u << 5));
  CHECK(l.matches_logical(0x00000020, true));
  CHECK(!l.matches_logical(0x00010020, true));
  CHECK(l.matches_physical(0xFFFFFFFF, true));
}

TEST_CASE("vlapic: x2APIC register rules", "[vlapic]") {
  Vlapic l;
  fresh(l, 7);
  l.set_mode(true, true);
  uint64_t v = 0;
  CHECK(l.read(kId, 0, v));
  CHECK(v == 7);
  WriteEffect fx;
  CHECK(!l.write(kEoi, 1, 0, fx));       // non-zero EOI: #GP
  CHECK(!l.write(kVersion, 0, 0, fx));   // read-only: #GP
  CHECK(!l.write(kLdr, 0, 0, fx));
  CHECK(!l.read(kDfr, 0, v));            // no DFR in x2APIC
  CHECK(!l.read(kIcrHigh, 0, v));
  CHECK(l.write(kSelfIpi, 0x33, 0, fx));
  CHECK(fx.send);
  CHECK(fx.msg.shorthand == Shorthand::kSelf);
  CHECK(!l.write(kSelfIpi, 0x133, 0, fx));
  // xAPIC mode: SELF_IPI is not a register.
  Vlapic x;
  fresh(x);
  CHECK(!x.write(kSelfIpi, 0x33, 0, fx));
}

TEST_CASE("vlapic: timer one-shot, periodic without drift, TSC deadline", "[vlapic]") {
  Vlapic l;
  fresh(l);
  WriteEffect fx;
  l.write(kTimerDivide, 0xB, 0, fx);  // divide by 1
  l.write(kLvtTimer, 0x30, 0, fx);    // one-shot
  l.write(kTimerInitial, 1000, 100, fx);
  CHECK(l.timer_deadline() == 100 + 2000);
  CHECK(rd(l, kTimerCurrent, 1100) == 500);
  CHECK(!l.timer_poll(2099));
  CHECK(l.timer_poll(2100));
  CHECK(l.deliverable() == 0x30);
  CHECK(l.timer_deadline() == 0);
  CHECK(rd(l, kTimerCurrent, 2200) == 0);
  // Divide by 16: 16 times longer.
  l.write(kTimerDivide, 0x3, 0, fx);
  l.write(kTimerInitial, 1000, 0, fx);
  CHECK(l.timer_deadline() == 32000);
  // Periodic: re-armed from the previous deadline, missed periods coalesced.
  l.write(kTimerDivide, 0xB, 0, fx);
  l.write(kLvtTimer, (1u << 17) | 0x31, 0, fx);
  l.write(kTimerInitial, 100, 0, fx);  // period 200 cycles
  CHECK(l.timer_poll(205));
  CHECK(l.timer_deadline() == 400);
  CHECK(l.timer_poll(1050));           // 3 periods late: one interrupt
  CHECK(l.timer_deadline() == 1200);
  // TSC deadline.
  l.write(kLvtTimer, (2u << 17) | 0x32, 0, fx);
  CHECK(l.timer_deadline() == 0);       // a mode switch disarms
  l.set_tsc_deadline_msr(5000);
  CHECK(l.tsc_deadline_msr() == 5000);
  CHECK(!l.timer_poll(4999));
  CHECK(l.timer_poll(5000));
  CHECK(l.tsc_deadline_msr() == 0);
  CHECK(l.irr_bit(0x32));
}

TEST_CASE("vlapic: IRR set from other threads while the owner acks", "[vlapic][concurrency]") {
  Vlapic l;
  fresh(l);
  constexpr unsigned kRounds = 20000;
  std::atomic<bool> sent{false};
  std::thread sender([&] {
    for (unsigned i = 0; i < kRounds; i++) l.accept(static_cast<uint8_t>(0x40 + (i % 64)), false);
    sent.store(true);
  });
  unsigned taken = 0;
  // Take on until the sender is done, not a fixed number of spins: it may get no core before they end.
  const auto give_up = std::chrono::steady_clock::now() + hvtest::kProgressGiveUp;
  for (unsigned spins = 0; spins < 10 * kRounds || (!sent.load() && std::chrono::steady_clock::now() < give_up);
       spins++) {
    const int v = l.deliverable();
    if (v < 0) continue;
    l.ack(static_cast<uint8_t>(v));
    WriteEffect fx;
    l.write(kEoi, 0, 0, fx);
    taken++;
  }
  const bool sent_while_taking = sent.load();
  sender.join();
  if (!sent_while_taking) FAIL_CHECK("the sender did not finish within 30 s while the owner took");
  while (l.deliverable() >= 0) {
    const int v = l.deliverable();
    l.ack(static_cast<uint8_t>(v));
    WriteEffect fx;
    l.write(kEoi, 0, 0, fx);
    taken++;
  }
  CHECK(taken >= 1);
  CHECK(l.highest_irr() == -1);
  CHECK(l.highest_isr() == -1);
}

// The register store is the virtual-APIC page (SDM Vol. 3C 30.1): every register at its
// architectural offset, in the format of the current mode, other bytes 0. The CPU reads this
// page directly on the hardware path (hv/apicv.h), so a wrong offset here is a wrong value the
// guest reads there.
TEST_CASE("vlapic: registers live in the page at their architectural offsets", "[vlapic]") {
  Vlapic l;
  fresh(l, 5);
  const uint32_t* p = l.page();
  REQUIRE((reinterpret_cast<uintptr_t>(p) & 0xFFF) == 0);
  auto at = [&](unsigned off) { return p[off / 4]; };
  CHECK(at(kId) == 5u << 24);
  CHECK(at(kVersion) == kVersionValue);
  CHECK(at(kSvr) == 0x1FF);
  CHECK(at(kDfr) == 0xFFFFFFFFu);
  WriteEffect fx;
  REQUIRE(l.write(kTpr, 0x30, 0, fx));
  CHECK(at(kTpr) == 0x30);
  CHECK(at(kPpr) == 0x30);
  l.accept(0x91, false);
  CHECK(at(kIrr + 0x40) == 1u << (0x91 - 0x80));
  l.ack(0x91);
  CHECK(at(kIrr + 0x40) == 0);
  CHECK(at(kIsr + 0x40) == 1u << (0x91 - 0x80));
  CHECK(at(kPpr) == 0x90);  // PPR kept in the page: the CPU reads VPPR from it
  l.accept(0x62, true);
  CHECK(at(kTmr + 0x30) == 1u << (0x62 - 0x60));
  CHECK(l.tmr_quad(1) == 1ull << (0x62 - 0x40));
  REQUIRE(l.write(kLvtTimer, 0x20045, 0, fx));
  CHECK(at(kLvtTimer) == 0x20045);
  REQUIRE(l.write(kTimerInitial, 1000, 0, fx));
  CHECK(at(kTimerInitial) == 1000);
  REQUIRE(l.write(kTimerDivide, 0xB, 0, fx));
  CHECK(at(kTimerDivide) == 0xB);
  REQUIRE(l.write(kIcrHigh, 0x03000000, 0, fx));
  CHECK(at(kIcrHigh) == 0x03000000u);
  CHECK(at(kIcrLow + 4) == 0);
  REQUIRE(l.write(kLdr, 0x04000000, 0, fx));
  CHECK(at(kLdr) == 0x04000000u);
  // Between the registers: nothing (the CPU's 64-bit x2APIC reads see these bytes).
  for (unsigned off = 0; off < 0x400; off += 16)
    for (unsigned w = 1; w < 4; w++) CHECK(at(off + 4 * w) == 0);
  // x2APIC: the full ID, the LDR derived from it, the 64-bit ICR at 0x300 (its upper half at
  // 0x304, where RDMSR 0x830 reads it), nothing left at 0x310.
  l.set_mode(true, true);
  CHECK(at(kId) == 5);
  CHECK(at(kLdr) == ((5u >> 4) << 16 | 1u << 5));
  CHECK(at(kIcrLow + 4) == 0x03000000u);
  CHECK(at(kIcrHigh) == 0);
  REQUIRE(l.write(kIcrLow, 0x0000000700000041ull, 0, fx));
  CHECK(at(kIcrLow) == 0x41);
  CHECK(at(kIcrLow + 4) == 7);
  // And back: the xAPIC format again.
  l.set_mode(true, false);
  CHECK(at(kId) == 5u << 24);
  CHECK(at(kIcrHigh) == 7);
  CHECK(at(kIcrLow + 4) == 0);
}

// What the CPU does to the page while the guest runs (virtual-interrupt delivery: IRR -> ISR;
// TPR virtualization; EOI virtualization) is what the software path then sees: no copy.
TEST_CASE("vlapic: changes the CPU makes in the page are the software path's state", "[vlapic]") {
  Vlapic l;
  fresh(l);
  uint32_t* p = l.page();
  l.accept(0x55, false);
  l.accept(0x72, false);
  // The CPU delivers 0x72: clears its IRR bit, sets its ISR bit (SDM 30.2.2).
  p[(kIrr + 0x30) / 4] &= ~(1u << (0x72 - 0x60));
  p[(kIsr + 0x30) / 4] |= 1u << (0x72 - 0x60);
  CHECK(l.highest_isr() == 0x72);
  CHECK(l.ppr() == 0x70);
  CHECK(l.deliverable() == -1);  // 0x55 is below the in-service class
  // The guest's MOV to CR8 through the TPR shadow: VTPR in the page.
  p[kTpr / 4] = 0x80;
  CHECK(l.tpr() == 0x80);
  CHECK(l.ppr() == 0x80);
  p[kTpr / 4] = 0;
  // The software EOI (an xAPIC write emulated by hv) ends the vector the CPU delivered.
  WriteEffect fx;
  REQUIRE(l.write(kEoi, 0, 0, fx));
  CHECK(l.highest_isr() == -1);
  CHECK(l.deliverable() == 0x55);
  CHECK(p[kPpr / 4] == 0);
}

TEST_CASE("vlapic: posted mode delivers through the PIR and the level latch", "[vlapic]") {
  Vlapic l;
  fresh(l);
  l.set_posted(true);
  PostedDesc& d = l.posted_desc();
  REQUIRE((reinterpret_cast<uintptr_t>(&d) & 0x3F) == 0);
  CHECK(l.accept(0x41, false));
  CHECK(!l.irr_bit(0x41));  // the IRR is the CPU's while the guest runs
  CHECK(d.pir[2] == 1u << 1);
  CHECK((d.control & 1) == 1);  // ON
  CHECK(l.accept(0x63, true));
  CHECK(!l.irr_bit(0x63));
  CHECK(d.pir[3] == 0);  // level: not in the PIR, the CPU would deliver it before the EOI-exit bitmap names it
  CHECK(l.tmr_quad(1) == 1ull << (0x63 - 0x40));
  CHECK(!l.accept(0x07, false));  // illegal vectors are refused as before
  CHECK(l.sync_posted());
  CHECK((d.control & 1) == 0);
  CHECK(d.pir[2] == 0);
  CHECK(l.irr_bit(0x41));
  CHECK(l.irr_bit(0x63));
  CHECK(!l.sync_posted());  // nothing more
  CHECK(l.deliverable() == 0x63);
  l.ack(0x63);
  WriteEffect fx;
  REQUIRE(l.write(kEoi, 0, 0, fx));
  CHECK(fx.eoi_level_vector == 0x63);
  CHECK(l.deliverable() == 0x41);
}

TEST_CASE("vlapic: posted deliveries from another thread all reach the IRR", "[vlapic][concurrency]") {
  Vlapic l;
  fresh(l);
  l.set_posted(true);
  constexpr unsigned kRounds = 20000;
  mmu::Atomic<uint32_t> done{0};  // deliveries the owner has taken and ended
  std::thread sender([&] {
    for (unsigned i = 0; i < kRounds; i++) {
      // One vector at a time: wait until the owner took the previous one, so every delivery
      // is a distinct event that must show up exactly once.
      while (done.load(mmu::Order::acquire) != i) {
      }
      l.accept(static_cast<uint8_t>(0x40 + (i % 64)), (i % 5) == 0);
    }
  });
  unsigned taken = 0;
  while (taken < kRounds) {
    l.sync_posted();
    const int v = l.deliverable();
    if (v < 0) continue;
    CHECK(v == static_cast<int>(0x40 + (taken % 64)));
    l.ack(static_cast<uint8_t>(v));
    WriteEffect fx;
    l.write(kEoi, 0, 0, fx);
    taken++;
    done.store(taken, mmu::Order::release);
  }
  sender.join();
  CHECK(taken == kRounds);
  l.sync_posted();
  CHECK(l.highest_irr() == -1);
}

// An APIC-write exit of "virtualize APIC accesses" (hv/apicv.cpp handle_apic_write): the CPU
// has stored the guest's value in the page before hv sees the write. Writes whose effect
// depends on the old value must still have it.
TEST_CASE("vlapic: a write the CPU already stored has the effect of the write", "[vlapic]") {
  Vlapic l;
  l.reset(0, 2'000'000, true);
  WriteEffect fx;
  REQUIRE(l.write(apic::kSvr, 0x1FF, 0, fx));
  REQUIRE(l.write(apic::kLvtLint0, 0x700, 0, fx));
  // Software disable through the page: the LVTs get masked, as for a write hv made.
  l.page()[apic::kSvr / 4] = 0xFF;
  REQUIRE(l.write_stored(apic::kSvr, 0xFF, 0, fx));
  CHECK(!l.sw_enabled());
  CHECK((l.page()[apic::kLvtLint0 / 4] & apic::kLvtMasked) != 0);
  // A timer mode change through the page disarms the running count.
  REQUIRE(l.write(apic::kSvr, 0x1FF, 0, fx));
  REQUIRE(l.write(apic::kLvtTimer, 0x30, 0, fx));  // one-shot
  REQUIRE(l.write(apic::kTimerInitial, 1000, 0, fx));
  CHECK(l.timer_deadline() != 0);
  l.page()[apic::kLvtTimer / 4] = (1u << 17) | 0x30;  // periodic
  WriteEffect fx2;
  REQUIRE(l.write_stored(apic::kLvtTimer, (1u << 17) | 0x30, 0, fx2));
  CHECK(fx2.timer_changed);
  CHECK(l.timer_deadline() == 0);
  CHECK(l.page()[apic::kTimerInitial / 4] == 0);
  // Without the restored copy the same store would have been taken for "no change".
  l.page()[apic::kLvtTimer / 4] = 0x30;
  WriteEffect fx3;
  REQUIRE(l.write_stored(apic::kLvtTimer, 0x30, 0, fx3));
  CHECK(fx3.timer_changed);
}

TEST_CASE("vlapic: LINT pins act by their LVT entries", "[vlapic][lint]") {
  Vlapic l;
  l.reset(0, kTscKhz, false);
  WriteEffect fx;
  // Reset: software-disabled, LVTs masked: an edge does nothing, and unmasking is refused.
  CHECK(l.lint_event(1).action == LintAction::kNone);
  CHECK(l.lint_event(0).action == LintAction::kNone);
  REQUIRE(l.write(kLvtLint1, 4u << 8, 0, fx));
  CHECK(l.lint_event(1).action == LintAction::kNone);
  REQUIRE(l.write(kSvr, 0x1FF, 0, fx));
  // NMI mode.
  REQUIRE(l.write(kLvtLint1, 4u << 8, 0, fx));
  CHECK(l.lint_event(1).action == LintAction::kNmi);
  // Masked NMI mode: nothing (the mask is honoured whatever the mode).
  REQUIRE(l.write(kLvtLint1, (4u << 8) | kLvtMasked, 0, fx));
  CHECK(l.lint_event(1).action == LintAction::kNone);
  // Fixed mode: the vector.
  REQUIRE(l.write(kLvtLint1, 0x41, 0, fx));
  const LintEvent e = l.lint_event(1);
  CHECK(e.action == LintAction::kFixed);
  CHECK(e.vector == 0x41);
  REQUIRE(l.write(kLvtLint1, 0x41 | kLvtMasked, 0, fx));
  CHECK(l.lint_event(1).action == LintAction::kNone);
  // INIT mode; SMI and ExtINT on LINT1 do nothing here.
  REQUIRE(l.write(kLvtLint1, 5u << 8, 0, fx));
  CHECK(l.lint_event(1).action == LintAction::kInit);
  REQUIRE(l.write(kLvtLint1, 2u << 8, 0, fx));
  CHECK(l.lint_event(1).action == LintAction::kNone);
  REQUIRE(l.write(kLvtLint1, 7u << 8, 0, fx));
  CHECK(l.lint_event(1).action == LintAction::kNone);
  // LINT0: ExtINT (the 8259's virtual wire) only while unmasked in ExtINT mode.
  REQUIRE(l.write(kLvtLint0, 7u << 8, 0, fx));
  CHECK(l.lint_event(0).action == LintAction::kExtInt);
  CHECK(l.takes_extint());
  REQUIRE(l.write(kLvtLint0, (7u << 8) | kLvtMasked, 0, fx));
  CHECK(!l.takes_extint());
  REQUIRE(l.write(kLvtLint0, 0x30, 0, fx));  // fixed: not the 8259's INTA cycle
  CHECK(!l.takes_extint());
  // Software disable masks every LVT again: LINT1 in NMI mode stops.
  REQUIRE(l.write(kLvtLint1, 4u << 8, 0, fx));
  CHECK(l.lint_event(1).action == LintAction::kNmi);
  REQUIRE(l.write(kSvr, 0xFF, 0, fx));
  CHECK(l.lint_event(1).action == LintAction::kNone);
  // Hardware-disabled: the pins go straight to the CPU (LINT0 INTR, LINT1 NMI).
  l.set_mode(false, false);
  CHECK(l.lint_event(1).action == LintAction::kNmi);
  CHECK(l.lint_event(0).action == LintAction::kExtInt);
  CHECK(l.takes_extint());
}

TEST_CASE("vlapic: LVT LINT1 rewritten while another thread pulses it", "[vlapic][lint][concurrency]") {
  // A hostile guest flooding LINT1 configuration while presses come: every pulse sees one
  // whole LVT value (one of those written), never a torn one.
  Vlapic l;
  fresh(l);
  std::atomic<bool> stop{false};
  std::atomic<unsigned> torn{0}, seen_nmi{0}, seen_fixed{0}, seen_none{0};
  std::thread presser([&] {  // Catch2's assertions are not thread-safe: count, check after the join
    while (!stop.load()) {
      const LintEvent e = l.lint_event(1);
      if (e.action == LintAction::kNmi) seen_nmi++;
      else if (e.action == LintAction::kFixed && e.vector == 0x41) seen_fixed++;
      else if (e.action == LintAction::kNone) seen_none++;
      else torn++;
    }
  });
  WriteEffect fx;
  // At least 20000 writes, and on until the presser has looked 1000 times: on a loaded machine
  // (ThreadSanitizer, the other tests beside) it may not get a core before 20000 writes are done.
  auto looked = [&] { return seen_nmi.load() + seen_fixed.load() + seen_none.load() + torn.load(); };
  for (unsigned i = 0; i < 20000 || looked() < 1000; i++) {
    const uint32_t v = i % 3 == 0 ? 4u << 8 : i % 3 == 1 ? 0x41u : (4u << 8) | kLvtMasked;
    REQUIRE(l.write(kLvtLint1, v, 0, fx));
  }
  stop.store(true);
  presser.join();
  CHECK(torn.load() == 0);
  CHECK(seen_nmi.load() + seen_fixed.load() + seen_none.load() > 0);
}
