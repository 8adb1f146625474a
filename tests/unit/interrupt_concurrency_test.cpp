// The interrupt devices under real threads (run under ThreadSanitizer by the host-tsan preset:
// the "[concurrency]" tag). Device threads drive IOAPIC pins and send IPIs while one owner
// thread plays the vCPU: it takes the highest deliverable vector, runs a "handler" that clears
// the source, and EOIs (a level vector's EOI goes back to the IOAPIC, which re-delivers a line
// still asserted). The contract checked (hv/devices/vlapic.h, ioapic.h): the IRR is published
// by any CPU without a lock, the IOAPIC's lock orders pins against EOIs, and with a device that
// waits for its interrupt to be handled before it raises the next one, every assertion is
// handled exactly once: none lost, none delivered twice, nothing left in IRR, ISR or remote IRR.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "hv/devices/ioapic.h"
#include "hv/devices/vlapic.h"

namespace {

using hv::ApicMessage;
using hv::Ioapic;
using hv::Vlapic;
using hv::WriteEffect;

// Sources: IOAPIC pins 0-1 level, 2-3 edge; two IPI senders. Each has its own vector.
constexpr unsigned kPins = 4, kSenders = 2, kSources = kPins + kSenders;
constexpr unsigned kRounds = 2000;
constexpr uint8_t kVector[kSources] = {0x41, 0x52, 0x63, 0x74, 0x85, 0x96};
constexpr bool kLevel[kSources] = {true, true, false, false, false, false};

struct Bench {
  Vlapic lapic;
  Ioapic io;
  std::atomic<unsigned> pending[kSources];  // 1 while the source waits for its handler
  std::atomic<unsigned> raised[kSources];   // assertions made (after the pin was driven)
  unsigned handled[kSources] = {};          // owner only
  unsigned spurious = 0;                    // owner only: a vector whose source was not pending
  std::atomic<bool> done{false};

  // Hands the IOAPIC's messages to the one LAPIC (all are fixed, physical, to APIC ID 0).
  void send(const Ioapic::Out& out) {
    for (unsigned i = 0; i < out.count; i++) lapic.accept(out.msg[i].vector, out.msg[i].level);
  }
  void program(unsigned pin) {
    Ioapic::Out o;
    io.write(0x00, 0x11 + 2 * pin, o);
    io.write(0x10, 0, o);  // destination APIC ID 0
    io.write(0x00, 0x10 + 2 * pin, o);
    io.write(0x10, kVector[pin] | (kLevel[pin] ? 1u << 15 : 0), o);  // fixed, physical, unmasked
    REQUIRE(o.count == 0);
  }
  unsigned source_of(int vector) const {
    for (unsigned s = 0; s < kSources; s++)
      if (kVector[s] == vector) return s;
    return kSources;
  }
};

}  // namespace

TEST_CASE("interrupts: IOAPIC pins and IPIs from several threads, one vCPU handling them: each handled exactly once",
          "[vlapic][ioapic][concurrency]") {
  Bench b;
  b.lapic.reset(0, 1000000, false);
  WriteEffect fx;
  REQUIRE(b.lapic.write(hv::apic::kSvr, 0x1FF, 0, fx));  // software-enabled
  b.io.reset();
  for (unsigned pin = 0; pin < kPins; pin++) b.program(pin);
  for (auto& p : b.pending) p.store(0);
  for (auto& r : b.raised) r.store(0);

  std::vector<std::thread> threads;
  for (unsigned s = 0; s < kSources; s++) {
    threads.emplace_back([&b, s] {
      for (unsigned r = 0; r < kRounds; r++) {
        // Raise: mark the source pending first, so the handler that runs finds it.
        b.pending[s].store(1, std::memory_order_release);
        if (s < kPins) {
          Ioapic::Out out;
          b.io.set_pin(s, true, out);
          if (!kLevel[s]) b.io.set_pin(s, false, out);  // an edge: a pulse
          b.send(out);
        } else {
          b.lapic.accept(kVector[s], false);  // an IPI
        }
        b.raised[s].fetch_add(1, std::memory_order_release);
        // Wait until the handler has run (the device's register read).
        while (b.pending[s].load(std::memory_order_acquire)) {
          if (b.done.load()) return;  // the owner gave up: an interrupt was lost
          std::this_thread::yield();
        }
      }
    });
  }

  std::thread owner([&b] {
    unsigned total = 0;
    auto last = std::chrono::steady_clock::now();
    while (total < kSources * kRounds) {
      const int v = b.lapic.deliverable();
      if (v < 0) {
        // A lost interrupt leaves its device waiting forever: give up after 10 s without one
        // (the counts then fail) rather than hang.
        if (std::chrono::steady_clock::now() - last > std::chrono::seconds(10)) break;
        std::this_thread::yield();
        continue;
      }
      last = std::chrono::steady_clock::now();
      b.lapic.ack(static_cast<uint8_t>(v));
      CHECK(b.lapic.isr_bit(static_cast<uint8_t>(v)));
      const unsigned s = b.source_of(v);
      REQUIRE(s < kSources);
      // The handler: the source was raised, the device's line goes low (level) and it is told.
      if (!b.pending[s].load(std::memory_order_acquire)) b.spurious++;
      if (s < kPins && kLevel[s]) {
        Ioapic::Out out;
        b.io.set_pin(s, false, out);
        REQUIRE(out.count == 0);
      }
      b.handled[s]++;
      total++;
      b.pending[s].store(0, std::memory_order_release);
      // Every other round of a level source, wait until the device has asserted its line again
      // before the EOI: the new assertion found remote IRR set and was not sent, so only the
      // EOI's re-delivery can bring it (the path a lost interrupt would hide in).
      if (kLevel[s] && b.handled[s] < kRounds && b.handled[s] % 2 == 0) {
        while (b.raised[s].load(std::memory_order_acquire) != b.handled[s] + 1) std::this_thread::yield();
        CHECK(b.lapic.highest_irr() != v);  // not sent: remote IRR held it back
      }
      WriteEffect e;
      b.lapic.eoi(e);
      CHECK(e.eoi_level_vector == (kLevel[s] ? v : -1));
      if (e.eoi_level_vector >= 0) {
        Ioapic::Out out;
        b.io.eoi(static_cast<uint8_t>(e.eoi_level_vector), out);
        b.send(out);  // a line asserted again already (the device's next round) is delivered here
      }
    }
    b.done.store(true);
  });

  for (auto& t : threads) t.join();
  owner.join();

  for (unsigned s = 0; s < kSources; s++) {
    INFO("source " << s << " vector " << int(kVector[s]));
    CHECK(b.handled[s] == kRounds);
  }
  CHECK(b.spurious == 0);
  CHECK(b.lapic.deliverable() < 0);
  CHECK(b.lapic.highest_irr() < 0);
  CHECK(b.lapic.highest_isr() < 0);
  for (unsigned pin = 0; pin < kPins; pin++) CHECK((b.io.entry(pin) & (1ull << 14)) == 0);  // remote IRR clear
}
