// VMX control computation (arch/x86/vmx/controls.cpp): the value hv programs from what it wants
// and what the capability MSR allows, the sentence that names a missing control, and that this
// sentence is written into the caller's buffer - several CPUs set up VMCSs at once, and with the
// one static buffer used before, one CPU's failure could overwrite another's message.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <thread>

#include "arch/x86/format.h"
#include "arch/x86/vmx/controls.h"
#include "progress_wait.h"

namespace {

using x86::vmx::compute_controls;
using x86::vmx::ControlRequest;
using x86::vmx::kWhySize;

// A capability MSR: bits that must be 1 in the low half, bits that may be 1 in the high half.
constexpr uint64_t cap(uint32_t must1, uint32_t may1) { return (uint64_t{may1} << 32) | must1; }

}  // namespace

TEST_CASE("vmx controls: wanted bits, forced bits, and only what may be 1", "[vmx]") {
  char why[kWhySize] = "untouched";
  uint32_t out = 0;
  // must-be-1 0x16, may-be-1 0xFFF6; required 0x80, optional 0x1000 (allowed) and 0x8 (not).
  const ControlRequest req{"processor-based", cap(0x16, 0xFFF6), 0x80, 0x1000 | 0x8};
  REQUIRE(compute_controls(req, out, why, sizeof why) == nullptr);
  CHECK(out == (0x80u | 0x1000u | 0x16u));
  CHECK(x86::vmx::forced_bits(req, out) == 0x16u);
  CHECK(std::strcmp(why, "untouched") == 0);  // success writes no message
}

TEST_CASE("vmx controls: a missing required bit is named, in the caller's buffer", "[vmx]") {
  char why[kWhySize] = {};
  uint32_t out = 0xDEAD;
  const ControlRequest req{"secondary", cap(0, 0xFF), 1u << 11, 0};
  const char* r = compute_controls(req, out, why, sizeof why);
  REQUIRE(r == why);
  CHECK(std::strstr(why, "required secondary VM control bit 11 is not supported") != nullptr);
  CHECK(out == 0xDEAD);  // unchanged on failure

  const ControlRequest broken{"VM-exit", cap(0x3, 0x1), 0, 0};  // must-1 not within may-1
  REQUIRE(compute_controls(broken, out, why, sizeof why) == why);
  CHECK(std::strstr(why, "VM-exit VM controls: capability MSR") != nullptr);

  char small[16];  // truncated, still terminated
  REQUIRE(compute_controls(req, out, small, sizeof small) == small);
  CHECK(std::strlen(small) < sizeof small);
}

TEST_CASE("vmx controls: threads failing at the same time each keep their own message", "[vmx][concurrency]") {
  // Two "CPUs" fail on different fields and bits, over and over, each with its own buffer; each
  // checks every time that its buffer holds its own sentence.
  constexpr int kRounds = 20000;
  std::atomic<int> go{0};
  std::atomic<int> wrong{0};
  std::atomic<int> finished{0};  // threads that have done their kRounds
  std::atomic<bool> starved{false};
  auto cpu = [&](const char* field, unsigned bit) {
    char why[kWhySize];
    char expect[kWhySize];
    std::snprintf(expect, sizeof expect, "required %s VM control bit %u is not supported", field, bit);
    const ControlRequest req{field, cap(0, ~(1u << bit)), 1u << bit, 0};
    auto fail_once = [&] {
      uint32_t out = 0;
      const char* r = compute_controls(req, out, why, sizeof why);
      if (r != why || std::strncmp(why, expect, std::strlen(expect)) != 0) wrong.fetch_add(1);
    };
    go.fetch_add(1);
    while (go.load() < 2) {
    }
    for (int i = 0; i < kRounds; i++) fail_once();
    finished.fetch_add(1);
    // The other may have had no core during our rounds (a loaded host): fail on until it is done too.
    if (!hvtest::wait_for_progress([&] { fail_once(); return finished.load() == 2; })) starved = true;
  };
  std::thread a(cpu, "pin-based", 3u), b(cpu, "secondary", 7u);
  a.join();
  b.join();
  if (starved) FAIL_CHECK("a thread did not finish its rounds within 30 s of the other");
  REQUIRE(wrong.load() == 0);
}
