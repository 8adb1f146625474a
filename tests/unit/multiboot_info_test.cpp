// The multiboot v1 information block (hv/multiboot_info.h): the layout of the information,
// memory map (the 640K-1M hole reserved, RAM to the end of the boot RAM), command line, module
// list and strings, module contents page-aligned; and the placement that keeps the block off
// the image, hv's reserved pages and the hole. Pure code, compiled into the host tests.
#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "hv/multiboot_info.h"

using namespace hv;

namespace {

template <class T>
T at(const std::vector<uint8_t>& b, uint64_t off) {
  T v;
  std::memcpy(&v, b.data() + off, sizeof v);
  return v;
}

}  // namespace

TEST_CASE("multiboot info: layout of the information, map, command line and modules", "[hv][multiboot]") {
  const MbModuleIn mods[2] = {{5000, "mod-a x=1"}, {1, ""}};
  MbPlan p;
  REQUIRE(mb_plan("guest-x a b", mods, 2, &p) == nullptr);
  std::vector<uint8_t> buf(p.meta_bytes, 0xCC);
  const uint64_t base = 0x3000, ram = 64ull << 20;
  mb_build(buf.data(), base, ram, "guest-x a b", mods, p);
  const MbInfo info = at<MbInfo>(buf, p.info);
  REQUIRE(info.flags == (kMbInfoMem | kMbInfoCmdline | kMbInfoMods | kMbInfoMmap | kMbInfoLoaderName));
  REQUIRE(info.mem_lower == 636);
  REQUIRE(info.mem_upper == (ram - 0x100000) / 1024);
  REQUIRE(std::string(reinterpret_cast<const char*>(buf.data() + (info.cmdline - base))) == "guest-x a b");
  REQUIRE(std::string(reinterpret_cast<const char*>(buf.data() + (info.boot_loader_name - base))) == "hv");
  // The memory map: RAM below 0x9F000, the hole reserved, RAM from 1 MiB to the end.
  REQUIRE(info.mmap_length == 3 * sizeof(MbMmap));
  const MbMmap m0 = at<MbMmap>(buf, info.mmap_addr - base), m1 = at<MbMmap>(buf, info.mmap_addr - base + 24),
               m2 = at<MbMmap>(buf, info.mmap_addr - base + 48);
  REQUIRE((m0.size == 20 && m0.base == 0 && m0.length == 0x9F000 && m0.type == 1));
  REQUIRE((m1.base == 0x9F000 && m1.base + m1.length == 0x100000 && m1.type == 2));
  REQUIRE((m2.base == 0x100000 && m2.base + m2.length == ram && m2.type == 1));
  // Modules: page-aligned contents after the metadata, strings kept.
  REQUIRE(info.mods_count == 2);
  const MbModule a = at<MbModule>(buf, info.mods_addr - base), b = at<MbModule>(buf, info.mods_addr - base + 16);
  REQUIRE(a.start % 4096 == 0);
  REQUIRE(a.start >= base + p.meta_bytes);
  REQUIRE(a.end - a.start == 5000);
  REQUIRE(b.start % 4096 == 0);
  REQUIRE(b.start >= a.end);
  REQUIRE(b.end - b.start == 1);
  REQUIRE(b.end <= base + p.total_bytes);
  REQUIRE(p.total_bytes % 4096 == 0);
  REQUIRE(std::string(reinterpret_cast<const char*>(buf.data() + (a.string - base))) == "mod-a x=1");
  REQUIRE(std::string(reinterpret_cast<const char*>(buf.data() + (b.string - base))).empty());
  // Nothing written past the metadata's end; the plan's parts don't overlap.
  REQUIRE(p.mmap >= sizeof(MbInfo));
  REQUIRE(p.cmdline >= p.loader_name + 3);
  REQUIRE(p.mods >= p.cmdline + std::strlen("guest-x a b") + 1);
  REQUIRE(p.mods % 8 == 0);
}

TEST_CASE("multiboot info: refusals", "[hv][multiboot]") {
  MbPlan p;
  MbModuleIn mods[kMbMaxModules + 1] = {};
  REQUIRE(mb_plan("", mods, kMbMaxModules + 1, &p) != nullptr);
  REQUIRE(mb_plan("", mods, kMbMaxModules, &p) == nullptr);
  const std::string big(kMbMaxString, 'x');
  REQUIRE(mb_plan(big.c_str(), nullptr, 0, &p) != nullptr);
  REQUIRE(mb_plan(big.c_str() + 1, nullptr, 0, &p) == nullptr);
  mods[0].string = big.c_str();
  REQUIRE(mb_plan("", mods, 1, &p) != nullptr);
}

TEST_CASE("multiboot info: placement avoids the image, reserved pages and the hole", "[hv][multiboot]") {
  const uint64_t ram = 32ull << 20;
  const GpaRange fixed[] = {{0, 0x1000}, {0x7000, 0x8000}, {0x9F000, 0x100000}};
  auto place = [&](GpaRange image, uint64_t bytes) {
    std::vector<GpaRange> busy(std::begin(fixed), std::end(fixed));
    busy.push_back(image);
    return mb_find_free(busy.data(), static_cast<unsigned>(busy.size()), bytes, ram);
  };
  // A kernel at 1 MiB: the first free page.
  REQUIRE(place({0x100000, 0x120000}, 0x1000) == 0x1000);
  // An image at 0x8000 (the old fixed information's neighbour): still below it.
  REQUIRE(place({0x8000, 0x9000}, 0x1000) == 0x1000);
  // An image from 0x1000: the next free range, after the image (0x7000 is reserved).
  REQUIRE(place({0x1000, 0x6000}, 0x1000) == 0x6000);
  REQUIRE(place({0x1000, 0x6000}, 0x2000) == 0x8000);
  // Too big for low memory: above the image.
  REQUIRE(place({0x100000, 0x123456}, 0x200000) == 0x124000);
  // Low memory full: above 1 MiB.
  REQUIRE(place({0x1000, 0x9F000}, 0x1000) == 0x100000);
  // Nothing fits: refused.
  REQUIRE(place({0x100000, ram}, 0xA0000) == UINT64_MAX);
  REQUIRE(place({0x1000, ram - 0x1000}, 0x2000) == UINT64_MAX);
  REQUIRE(place({0x1000, ram - 0x1000}, 0x1000) == ram - 0x1000);
  // The result never overlaps a busy range (a sweep over image positions and sizes).
  for (uint64_t start = 0x1000; start < 0x200000; start += 0x3000)
    for (uint64_t bytes = 0x1000; bytes <= 0x90000; bytes += 0x11000) {
      const GpaRange img{start, start + 0x5800};
      const uint64_t at = place(img, bytes);
      REQUIRE(at != UINT64_MAX);
      REQUIRE(at % 4096 == 0);
      REQUIRE(at + bytes <= ram);
      REQUIRE((at + bytes <= img.start || at >= img.end));
      for (const GpaRange& f : fixed) REQUIRE((at + bytes <= f.start || at >= f.end));
    }
}
