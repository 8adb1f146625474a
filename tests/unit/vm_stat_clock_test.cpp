// VmStatClock (hv/vm_stat_clock.h): one live-counter line per period per VM, whichever vCPU asks.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "hv/vm_stat_clock.h"

using hv::VmStatClock;

TEST_CASE("vm stat clock: due on the period grid, once per period, missed periods skipped", "[vm_stat]") {
  VmStatClock c;
  uint64_t e = 0;
  c.start(1000, 0);
  CHECK_FALSE(c.enabled());
  CHECK_FALSE(c.claim(~0ull - 1, &e));  // off: never due
  c.start(1000, 10);
  CHECK(c.enabled());
  CHECK_FALSE(c.claim(1009, &e));
  CHECK(c.claim(1010, &e));
  CHECK(e == 10);
  CHECK_FALSE(c.claim(1010, &e));  // claimed already
  CHECK_FALSE(c.claim(1019, &e));
  CHECK(c.claim(1035, &e));  // 1020 and 1030 were missed: one line, then back on the grid
  CHECK(e == 35);
  CHECK_FALSE(c.claim(1039, &e));
  CHECK(c.claim(1040, &e));
  CHECK(e == 40);
}

TEST_CASE("vm stat clock: vCPU threads asking at once claim each period at most once", "[vm_stat][concurrency]") {
  constexpr uint64_t kPeriod = 16, kEnd = 20000;
  VmStatClock c;
  c.start(0, kPeriod);
  std::atomic<uint64_t> now{0};
  std::atomic<uint64_t> asks{0};
  std::atomic<bool> stop{false};
  constexpr unsigned kThreads = 4;
  std::vector<std::vector<uint64_t>> got(kThreads);
  std::vector<std::thread> t;
  for (unsigned i = 0; i < kThreads; i++)
    t.emplace_back([&, i] {
      while (!stop.load()) {
        uint64_t e = 0;
        if (c.claim(now.load(), &e)) got[i].push_back(e / kPeriod);
        asks.fetch_add(1);
      }
    });
  // Every 64 ticks (four periods) the clock waits until some thread has asked after the tick.
  // Without the wait, a loaded host may run the whole loop before any thread gets a core, and
  // the test would check nothing. At most one ask per thread can be in flight from before the
  // tick, so kThreads + 1 more asks include one that read the new time.
  for (uint64_t x = 1; x <= kEnd; x++) {
    now.store(x);
    if (x % 64 == 0) {
      const uint64_t a0 = asks.load();
      while (asks.load() < a0 + kThreads + 1) std::this_thread::yield();
    }
  }
  stop.store(true);
  for (auto& th : t) th.join();
  std::vector<uint64_t> all;
  for (auto& g : got) all.insert(all.end(), g.begin(), g.end());
  std::sort(all.begin(), all.end());
  CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());  // no period claimed twice
  // Each wait saw an ask at a time on the period grid, so each 64-tick stretch has a claim.
  REQUIRE(all.size() >= kEnd / 64);
  CHECK(all.back() <= kEnd / kPeriod);
  CHECK(all.size() <= kEnd / kPeriod);
  // The last period due is claimed by someone asking after the clock stopped.
  uint64_t e = 0;
  const bool late = c.claim(kEnd, &e);
  CHECK((late || all.back() == kEnd / kPeriod));
}
