// The virtual local APIC's register and priority logic (hv/devices/vlapic.h), host-side.
#include "hv/devices/vlapic.h"

#include <catch2/catch.hpp>

#include <thread>

#include "hv/cpuid_policy.h"

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
  std::thread sender([&] {
    for (unsigned i = 0; i < kRounds; i++) l.accept(static_cast<uint8_t>(0x40 + (i % 64)), false);
  });
  unsigned taken = 0;
  for (unsigned spins = 0; spins < 10 * kRounds; spins++) {
    const int v = l.deliverable();
    if (v < 0) continue;
    l.ack(static_cast<uint8_t>(v));
    WriteEffect fx;
    l.write(kEoi, 0, 0, fx);
    taken++;
  }
  sender.join();
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
