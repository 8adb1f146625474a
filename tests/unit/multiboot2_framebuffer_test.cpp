// The multiboot2 framebuffer tag (type 8) as GRUB writes it: the common part (address, pitch,
// width, height, bpp, type, 16-bit reserved) and, for direct RGB (type 1), six bytes of colour
// field positions and sizes at offset 32 (the tag is 38 bytes, not padded). EGA text (type 2)
// has no colour fields. The framebuffer console (arch/x86/fb_console.cpp) draws with these.
#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

#include "arch/x86/multiboot2.h"

namespace {

std::vector<uint64_t> info_with_framebuffer(uint8_t type, bool colour_fields) {
  std::vector<uint8_t> b(8, 0);
  auto put = [&b](uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  // Tag 6: one available range (parse() wants a memory map).
  put(6, 4), put(40, 4), put(24, 4), put(0, 4), put(0x100000, 8), put(64 << 20, 8), put(1, 4), put(0, 4);
  const size_t start = b.size();
  put(8, 4);
  put(colour_fields ? 38 : 32, 4);
  put(0xC0000000, 8);  // address
  put(type == 2 ? 160 : 5120, 4);  // pitch
  put(type == 2 ? 80 : 1280, 4);   // width
  put(type == 2 ? 25 : 800, 4);    // height
  put(type == 2 ? 16 : 32, 1);     // bpp
  put(type, 1);
  put(0, 2);  // reserved
  if (colour_fields) put(16, 1), put(8, 1), put(8, 1), put(8, 1), put(0, 1), put(8, 1);
  REQUIRE(b.size() - start == (colour_fields ? 38u : 32u));
  while (b.size() % 8) b.push_back(0);
  put(0, 4), put(8, 4);  // end tag
  const uint32_t total = static_cast<uint32_t>(b.size());
  std::memcpy(b.data(), &total, 4);
  std::vector<uint64_t> words((b.size() + 7) / 8);
  std::memcpy(words.data(), b.data(), b.size());
  return words;
}

}  // namespace

TEST_CASE("multiboot2: the RGB framebuffer tag's colour fields are read", "[hv][multiboot2]") {
  std::vector<uint64_t> info = info_with_framebuffer(1, true);
  auto* boot = new x86::mb2::BootInfo();
  REQUIRE(x86::mb2::parse(x86::mb2::kBootloaderMagic, reinterpret_cast<uint64_t>(info.data()), *boot) == nullptr);
  REQUIRE(boot->have_framebuffer);
  const x86::mb2::Framebuffer& f = boot->framebuffer;
  CHECK(f.address == 0xC0000000);
  CHECK(f.pitch == 5120);
  CHECK(f.width == 1280);
  CHECK(f.height == 800);
  CHECK(f.bpp == 32);
  CHECK(f.type == 1);
  CHECK(f.red_pos == 16);
  CHECK(f.red_size == 8);
  CHECK(f.green_pos == 8);
  CHECK(f.green_size == 8);
  CHECK(f.blue_pos == 0);
  CHECK(f.blue_size == 8);
  delete boot;
}

TEST_CASE("multiboot2: an EGA text framebuffer tag has no colour fields", "[hv][multiboot2]") {
  std::vector<uint64_t> info = info_with_framebuffer(2, false);
  auto* boot = new x86::mb2::BootInfo();
  REQUIRE(x86::mb2::parse(x86::mb2::kBootloaderMagic, reinterpret_cast<uint64_t>(info.data()), *boot) == nullptr);
  REQUIRE(boot->have_framebuffer);
  CHECK(boot->framebuffer.type == 2);
  CHECK(boot->framebuffer.width == 80);
  CHECK(boot->framebuffer.height == 25);
  CHECK(boot->framebuffer.red_size == 0);
  CHECK(boot->framebuffer.blue_size == 0);
  delete boot;
}
