// Tests of the host test harness itself: a harness that cannot catch a double free or a write
// after free would make every MMU test that relies on it meaningless.
#include <catch2/catch.hpp>
#include <cstring>

#include "tests/host/host_platform.h"

TEST_CASE("host platform hands out zeroed pages and accounts for them", "[host]") {
  hvtest::HostPlatform p;
  mmu::hpa_t a = p.alloc_page();
  REQUIRE(a != 0);
  REQUIRE(a % mmu::kPageSize == 0);
  auto* bytes = static_cast<uint8_t*>(p.phys_to_virt(a));
  for (size_t i = 0; i < mmu::kPageSize; i++) REQUIRE(bytes[i] == 0);
  REQUIRE(p.live_pages() == 1);
  p.free_page(a);
  REQUIRE(p.live_pages() == 0);
  REQUIRE(p.errors() == 0);
}

TEST_CASE("host platform detects double free and write after free", "[host]") {
  hvtest::HostPlatform p;
  mmu::hpa_t a = p.alloc_page();
  p.free_page(a);
  p.free_page(a);
  REQUIRE(p.errors() == 1);
  mmu::hpa_t b = p.alloc_page();
  p.free_page(b);
  // A stale writer scribbles on the freed page (it is quarantined, so this is not UB for ASan).
  static_cast<uint8_t*>(p.phys_to_virt(b))[100] = 1;
  REQUIRE(p.check_quarantine() == 1);
}

TEST_CASE("host platform page limit simulates exhaustion", "[host]") {
  hvtest::HostPlatform p;
  p.set_page_limit(2);
  mmu::hpa_t a = p.alloc_page(), b = p.alloc_page();
  REQUIRE(a != 0);
  REQUIRE(b != 0);
  REQUIRE(p.alloc_page() == 0);
  p.free_page(a);
  mmu::hpa_t c = p.alloc_page();
  REQUIRE(c != 0);
  p.free_page(b);
  p.free_page(c);
  REQUIRE(p.live_pages() == 0);
}
