// INIT/SIPI latch of a vCPU (hv/sipi_latch.h): the rules one at a time, then senders and the
// owner as real threads ([concurrency], run under ThreadSanitizer by the host-tsan preset).
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

#include "hv/sipi_latch.h"

using hv::SipiLatch;

TEST_CASE("sipi latch: an AP reset to wait takes its INIT, then the first SIPI starts it", "[hv][sipi]") {
  SipiLatch l;
  l.reset(true);
  CHECK(l.init_pending());
  CHECK(l.take_sipi() == -1);  // the INIT first
  CHECK(l.take_init());
  CHECK(l.waiting());
  CHECK_FALSE(l.take_init());
  CHECK(l.take_sipi() == -1);  // nothing latched yet
  CHECK(l.deliver_sipi(0x07));
  CHECK_FALSE(l.deliver_sipi(0x09));  // a second SIPI is ignored
  CHECK(l.take_sipi() == 0x07);
  CHECK_FALSE(l.waiting());
  CHECK(l.raw() == 0);
  CHECK_FALSE(l.deliver_sipi(0x07));  // running: ignored
}

TEST_CASE("sipi latch: INIT then SIPI before the vCPU looks starts it at that SIPI", "[hv][sipi]") {
  SipiLatch l;
  l.reset(false);  // running
  CHECK_FALSE(l.deliver_sipi(0x10));
  l.deliver_init();
  CHECK(l.deliver_sipi(0x10));  // accepted: the INIT is pending
  CHECK(l.take_init());         // the SIPI latched after the INIT survives it
  CHECK(l.take_sipi() == 0x10);
}

TEST_CASE("sipi latch: an INIT drops a SIPI latched before it", "[hv][sipi]") {
  SipiLatch l;
  l.reset(true);
  REQUIRE(l.take_init());
  CHECK(l.deliver_sipi(0x20));
  l.deliver_init();             // resets the CPU again: the old SIPI is gone
  CHECK(l.take_sipi() == -1);   // INIT pending: take it first
  CHECK(l.take_init());
  CHECK(l.take_sipi() == -1);
  CHECK(l.deliver_sipi(0x21));
  CHECK(l.take_sipi() == 0x21);
}

TEST_CASE("sipi latch: set_running keeps only a pending INIT", "[hv][sipi]") {
  SipiLatch l;
  l.reset(true);
  REQUIRE(l.take_init());
  REQUIRE(l.deliver_sipi(0x30));
  l.set_running();
  CHECK(l.raw() == 0);
  l.deliver_init();
  l.set_running();
  CHECK(l.init_pending());
}

// Senders deliver INIT-SIPI-SIPI sequences while the owner runs its loop (take_init, then
// take_sipi while waiting). Invariants: every start happens at a vector some sender used after
// an INIT; the owner never starts while not waiting; after the last sequence the owner ends
// up started, at a vector of one of the last sequences.
TEST_CASE("sipi latch: concurrent INIT-SIPI-SIPI senders and the owner", "[hv][sipi][concurrency]") {
  for (unsigned round = 0; round < 200; round++) {
    SipiLatch l;
    l.reset(true);
    std::atomic<unsigned> senders_done{0};
    constexpr unsigned kSenders = 3, kSequences = 50;
    std::atomic<uint32_t> starts{0};
    std::atomic<bool> bad{false};
    std::thread owner([&] {
      bool waiting = false;
      for (;;) {
        if (l.take_init()) waiting = true;
        if (waiting) {
          const int v = l.take_sipi();
          if (v >= 0) {
            if (v < 1 || v > static_cast<int>(kSenders)) bad = true;
            waiting = false;
            starts.fetch_add(1);
          }
        } else if (l.waiting()) {
          bad = true;  // waiting is only ever set through take_init
        }
        if (senders_done.load() == kSenders && !l.init_pending() && !waiting) break;
        if (senders_done.load() == kSenders && waiting && !(l.raw() & SipiLatch::kSipi)) {
          // The last sequence's SIPIs were all consumed or dropped by a later INIT whose SIPI
          // must still come; senders are done, so a latched-but-missing SIPI is a bug.
          bad = true;
          break;
        }
      }
    });
    std::vector<std::thread> senders;
    for (unsigned s = 1; s <= kSenders; s++)
      senders.emplace_back([&, s] {
        for (unsigned k = 0; k < kSequences; k++) {
          l.deliver_init();
          l.deliver_sipi(static_cast<uint8_t>(s));
          l.deliver_sipi(static_cast<uint8_t>(s));
        }
        senders_done.fetch_add(1);
      });
    for (auto& t : senders) t.join();
    owner.join();
    REQUIRE_FALSE(bad.load());
    CHECK(starts.load() >= 1);
  }
}
