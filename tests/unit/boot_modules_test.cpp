// GRUB modules by name (hv/boot_modules.h) and the multiboot2 module table
// (arch/x86/multiboot2.h): exact names, arguments after the name, and more modules than the
// table keeps are counted, not silently dropped. Pure code, compiled into the host tests.
#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "arch/x86/format.h"
#include "arch/x86/multiboot2.h"
#include "hv/boot_modules.h"

using hv::module_args;
using hv::module_name_is;

TEST_CASE("boot modules: a name is the first word, compared exactly", "[hv][modules]") {
  REQUIRE(module_name_is("guest-hcall", "guest-hcall"));
  REQUIRE(module_name_is("guest-hcall console=1 x", "guest-hcall"));
  REQUIRE(module_name_is("  guest-hcall\targ", "guest-hcall"));
  REQUIRE_FALSE(module_name_is("guest-hcall-elf", "guest-hcall"));   // a prefix is not the name
  REQUIRE_FALSE(module_name_is("guest-memtouch", "memtouch"));       // nor is a part of it
  REQUIRE_FALSE(module_name_is("guest-hcall", "guest-hcall-elf"));
  REQUIRE_FALSE(module_name_is("x guest-hcall", "guest-hcall"));     // only the first word
  REQUIRE_FALSE(module_name_is("", "guest-hcall"));
  REQUIRE_FALSE(module_name_is(nullptr, "guest-hcall"));
  REQUIRE_FALSE(module_name_is("guest-hcall", ""));
  REQUIRE(std::string(module_args("guest-hcall console=1 x")) == "console=1 x");
  REQUIRE(std::string(module_args("  guest-hcall  \t a")) == "a");
  REQUIRE(std::string(module_args("guest-hcall")).empty());
  REQUIRE(std::string(module_args(nullptr)).empty());
}

namespace {

// A multiboot2 information block with a memory map and `modules` module tags named m0, m1, ...
std::vector<uint64_t> make_info(unsigned modules) {
  std::vector<uint8_t> b(8, 0);
  auto put32 = [&b](uint32_t v) {
    for (int i = 0; i < 4; i++) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  auto put64 = [&](uint64_t v) {
    put32(static_cast<uint32_t>(v));
    put32(static_cast<uint32_t>(v >> 32));
  };
  auto align8 = [&b] {
    while (b.size() % 8) b.push_back(0);
  };
  // Tag 6: one available range.
  put32(6);
  put32(16 + 24);
  put32(24);
  put32(0);
  put64(0x100000);
  put64(64 << 20);
  put32(1);
  put32(0);
  align8();
  for (unsigned i = 0; i < modules; i++) {
    const std::string name = "m" + std::to_string(i) + " arg";
    put32(3);
    put32(static_cast<uint32_t>(16 + name.size() + 1));
    put32(0x200000 + i * 0x1000);
    put32(0x201000 + i * 0x1000);
    for (char c : name) b.push_back(static_cast<uint8_t>(c));
    b.push_back(0);
    align8();
  }
  put32(0);  // end tag
  put32(8);
  const uint32_t total = static_cast<uint32_t>(b.size());
  std::memcpy(b.data(), &total, 4);
  std::vector<uint64_t> words((b.size() + 7) / 8);  // 8-byte aligned, as parse() requires
  std::memcpy(words.data(), b.data(), b.size());
  return words;
}

}  // namespace

TEST_CASE("boot modules: more modules than the table holds are counted, the first ones kept", "[hv][modules]") {
  constexpr unsigned kMax = x86::mb2::BootInfo::kMaxModules;
  REQUIRE(kMax > 16);  // the ISO's modules plus room for the guest platform's conformance guests
  for (unsigned given : {12u, kMax, kMax + 7}) {
    std::vector<uint64_t> info = make_info(given);
    auto* boot = new x86::mb2::BootInfo();
    REQUIRE(x86::mb2::parse(x86::mb2::kBootloaderMagic, reinterpret_cast<uint64_t>(info.data()), *boot) == nullptr);
    const unsigned kept = given < kMax ? given : kMax;
    REQUIRE(boot->module_count == kept);
    REQUIRE(boot->modules_ignored == given - kept);
    REQUIRE(hv::find_module(*boot, "m0") == &boot->modules[0]);
    const std::string last = "m" + std::to_string(kept - 1);
    REQUIRE(hv::find_module(*boot, last.c_str()) == &boot->modules[kept - 1]);
    REQUIRE(std::string(module_args(boot->modules[kept - 1].cmdline)) == "arg");
    const std::string dropped = "m" + std::to_string(kept);
    REQUIRE(hv::find_module(*boot, dropped.c_str()) == nullptr);
    delete boot;
  }
}
