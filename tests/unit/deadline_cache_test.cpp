// hv/deadline_cache.h: the VM-entry path's cache of "nothing due before poll_at".
#include <catch2/catch.hpp>
#include <cstdio>
#include <thread>
#include <vector>

#include "hv/deadline_cache.h"
#include "progress_wait.h"

using hv::DeadlineCache;

TEST_CASE("deadline cache: empty until published, valid until poll_at", "[deadline_cache]") {
  DeadlineCache c;
  uint64_t d = 0;
  CHECK_FALSE(c.lookup(0, &d));  // nothing published: poll
  const uint64_t g = c.begin();
  c.publish(g, 1000, 1500);
  REQUIRE(c.lookup(999, &d));
  CHECK(d == 1500);
  CHECK_FALSE(c.lookup(1000, &d));  // poll_at reached: poll again
  CHECK_FALSE(c.lookup(5000, &d));
}

TEST_CASE("deadline cache: a change forgets the pair and drops a publish that began before it",
          "[deadline_cache]") {
  DeadlineCache c;
  uint64_t d = 0;
  c.publish(c.begin(), 1000, 1000);
  REQUIRE(c.lookup(10, &d));
  c.changed();
  CHECK_FALSE(c.lookup(10, &d));
  // A poll that began before the change may have seen the old device state: dropped.
  const uint64_t before = c.begin();
  c.changed();
  c.publish(before, 2000, 2000);
  CHECK_FALSE(c.lookup(10, &d));
  // One that began after it is kept.
  c.publish(c.begin(), 3000, 2500);
  REQUIRE(c.lookup(10, &d));
  CHECK(d == 2500);
}

// Writers publish pairs (poll_at = 2s + 1000, deadline = poll_at + 7) computed from the
// "device state" s they read after begin(); a changer changes the state and then calls
// changed(), as hv's port handlers do; readers look up. A reader must never see a torn pair
// (the poll_at of one publish with the deadline of another), and a lookup that starts after
// changed() returned must never answer with a pair computed from the state before the change.
TEST_CASE("deadline cache: readers see whole pairs of the current state, with threads",
          "[deadline_cache][concurrency]") {
  DeadlineCache c;
  mmu::Atomic<int> stop{0};
  mmu::Atomic<uint64_t> state{0};    // the devices: changed by the changer only
  mmu::Atomic<uint64_t> settled{0};  // the state whose changed() has returned
  mmu::Atomic<uint64_t> torn{0}, stale{0}, hits{0};
  bool starved = false;  // the changer gave up waiting for a hit (written by it, read after the join)
  constexpr uint64_t kNow = 0;  // every published poll_at is in the future

  std::vector<std::thread> ts;
  for (int w = 0; w < 2; w++) {
    ts.emplace_back([&] {
      while (!stop.load(mmu::Order::relaxed)) {
        const uint64_t g = c.begin();
        const uint64_t s = state.load(mmu::Order::acquire);  // "poll the devices"
        const uint64_t at = s * 2 + 1000;
        c.publish(g, at, at + 7);
      }
    });
  }
  for (int r = 0; r < 2; r++) {
    ts.emplace_back([&] {
      while (!stop.load(mmu::Order::relaxed)) {
        const uint64_t floor = settled.load(mmu::Order::acquire);
        uint64_t d = 0;
        if (!c.lookup(kNow, &d)) continue;
        hits.fetch_add(1, mmu::Order::relaxed);
        if (d < 1007 || (d - 1007) % 2 != 0) {
          torn.fetch_add(1, mmu::Order::relaxed);
          continue;
        }
        if ((d - 1007) / 2 < floor) stale.fetch_add(1, mmu::Order::relaxed);
      }
    });
  }
  std::thread changer([&] {
    for (uint64_t i = 1; i <= 20000; i++) {
      state.store(i, mmu::Order::release);  // the device write
      c.changed();                          // then the announcement
      settled.store(i, mmu::Order::release);
      if ((i & 63) == 0) std::this_thread::yield();
      // A loaded host may give writers and readers no core before the changes end: every 1024,
      // wait for 3 more hits (each reader may have 1 in flight from before; the third is new).
      if ((i & 1023) == 0 && !starved) {
        const uint64_t h0 = hits.load(mmu::Order::relaxed);
        starved = !hvtest::wait_for_progress([&] { return hits.load(mmu::Order::relaxed) >= h0 + 3; });
      }
    }
    // With no more changes the writers' next publish sticks: let the readers find it.
    for (int k = 0; k < 1000000 && hits.load(mmu::Order::relaxed) == 0; k++) std::this_thread::yield();
    stop.store(1, mmu::Order::relaxed);
  });
  changer.join();
  for (auto& t : ts) t.join();
  std::printf("[deadline-cache] %llu lookups answered from the cache\n",
              static_cast<unsigned long long>(hits.load(mmu::Order::relaxed)));
  if (starved) FAIL_CHECK("no lookup answered from the cache within 30 s of a change: writers or readers stuck");
  CHECK(torn.load(mmu::Order::relaxed) == 0);
  CHECK(stale.load(mmu::Order::relaxed) == 0);
  CHECK(hits.load(mmu::Order::relaxed) > 0);
}
