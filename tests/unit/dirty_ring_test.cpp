// The per-vCPU dirty ring (mmu/dirty_ring.h): sizes, push/reap order, wrap-around of the
// counters and of the storage, full (nothing overwritten, drops counted), the soft limit.
#include <catch2/catch.hpp>

#include <vector>

#include "mmu/dirty_ring.h"
#include "tests/host/host_platform.h"

using mmu::DirtyRing;
using mmu::DirtyRingEntry;
using hvtest::HostPlatform;

namespace {
struct Ring {
  HostPlatform p;
  DirtyRing* r;
  Ring(uint32_t n, uint32_t reserve) : r(DirtyRing::create(p, n, reserve)) { REQUIRE(r != nullptr); }
  ~Ring() {
    r->destroy();
    CHECK(p.live_pages() == 0);
  }
};
}  // namespace

TEST_CASE("dirty ring: sizes are checked", "[dirtyring]") {
  HostPlatform p;
  CHECK(DirtyRing::create(p, 0, 0) == nullptr);
  CHECK(DirtyRing::create(p, 8, 0) == nullptr);     // below the minimum
  CHECK(DirtyRing::create(p, 48, 0) == nullptr);    // not a power of two
  CHECK(DirtyRing::create(p, DirtyRing::kMaxEntries * 2, 0) == nullptr);
  CHECK(DirtyRing::create(p, 64, 64) == nullptr);   // the reserve must leave room
  CHECK(p.live_pages() == 0);
  p.set_page_limit(2);  // header + 1 page: a 512-entry ring needs 3
  CHECK(DirtyRing::create(p, 512, 0) == nullptr);
  CHECK(p.live_pages() == 0);  // nothing kept after a partial failure
  p.set_page_limit(0);
  DirtyRing* r = DirtyRing::create(p, DirtyRing::kMaxEntries, 512);
  REQUIRE(r != nullptr);
  CHECK(r->capacity() == DirtyRing::kMaxEntries);
  CHECK(p.live_pages() == 1 + DirtyRing::kMaxPages);
  r->destroy();
  CHECK(p.live_pages() == 0);
}

TEST_CASE("dirty ring: entries come back in push order, across page and counter wraps", "[dirtyring]") {
  Ring g(512, 16);  // two storage pages
  DirtyRing& r = *g.r;
  std::vector<DirtyRingEntry> out(512);
  uint64_t next_push = 0, next_reap = 0;
  // 40 rounds of 300 pushes and reaps in odd batches: the storage index wraps many times.
  for (int round = 0; round < 40; round++) {
    for (int i = 0; i < 300; i++, next_push++) REQUIRE(r.push(static_cast<uint32_t>(next_push % 7), 1, next_push));
    REQUIRE(r.used() == 300);
    uint32_t left = 300;
    while (left > 0) {
      const uint32_t n = r.reap(out.data(), 37);
      REQUIRE(n == (left < 37 ? left : 37));
      for (uint32_t i = 0; i < n; i++, next_reap++) {
        REQUIRE(out[i].offset == next_reap);
        REQUIRE(out[i].slot == next_reap % 7);
        REQUIRE(out[i].as_id == 1);
      }
      left -= n;
    }
  }
  REQUIRE(r.used() == 0);
  REQUIRE(r.reap(out.data(), 512) == 0);
  REQUIRE(r.pushed() == next_push);
  REQUIRE(r.drops() == 0);
}

TEST_CASE("dirty ring: full refuses without overwriting; the soft limit comes first", "[dirtyring]") {
  Ring g(64, 8);
  DirtyRing& r = *g.r;
  for (uint64_t i = 0; i < 56; i++) {
    REQUIRE(!r.soft_full());
    REQUIRE(r.push(1, 0, i));
  }
  REQUIRE(r.soft_full());  // 56 = 64 - 8 used
  for (uint64_t i = 56; i < 64; i++) REQUIRE(r.push(1, 0, i));  // the reserve still takes pushes
  REQUIRE(!r.push(1, 0, 999));
  REQUIRE(!r.push(1, 0, 998));
  REQUIRE(r.drops() == 2);
  REQUIRE(r.used() == 64);
  std::vector<DirtyRingEntry> out(64);
  REQUIRE(r.reap(out.data(), 10) == 10);
  for (uint64_t i = 0; i < 10; i++) REQUIRE(out[i].offset == i);
  REQUIRE(!r.soft_full());  // 54 used, below the soft limit of 56
  REQUIRE(r.push(1, 0, 64));
  REQUIRE(r.reap(out.data(), 64) == 55);
  for (uint64_t i = 0; i < 55; i++) REQUIRE(out[i].offset == 10 + i);  // 999 and 998 never got in
  REQUIRE(!r.soft_full());
}
