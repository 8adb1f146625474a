// Linux's bzImage boot protocol (hv/linux_boot.h), the loader choice (hv/guest_image.h) and the
// guest memory map (hv/guest_memmap.h), against synthetic images: a setup header built here
// with the fields the protocol defines, every refusal the loader promises, the layout of the
// zero page, the GDT and the identity page tables.
#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

#include "hv/guest_image.h"
#include "hv/guest_memmap.h"
#include "hv/linux_boot.h"

using namespace hv;

namespace {

constexpr uint64_t kMiB = 1ull << 20;

template <class T>
void put(std::vector<uint8_t>& b, uint64_t off, T v) {
  std::memcpy(b.data() + off, &v, sizeof v);
}
template <class T>
T get(const uint8_t* b, uint64_t off) {
  T v;
  std::memcpy(&v, b + off, sizeof v);
  return v;
}

// A bzImage as the 6.1 kernels make it, shrunk: 3 setup sectors after the boot sector, then
// `code_bytes` of "protected-mode code" (a pattern), protocol 2.15.
std::vector<uint8_t> bzimage(uint64_t code_bytes = 64 * 1024) {
  const uint8_t sects = 3;
  std::vector<uint8_t> b((sects + 1) * 512 + code_bytes, 0);
  b[0x1F1] = sects;
  put<uint32_t>(b, 0x1F4, static_cast<uint32_t>(code_bytes / 16));  // syssize
  put<uint16_t>(b, 0x1FE, 0xAA55);
  b[0x200] = 0xEB;
  b[0x201] = 0x6A;  // header ends at 0x26C
  std::memcpy(b.data() + 0x202, "HdrS", 4);
  put<uint16_t>(b, 0x206, 0x020F);
  b[0x211] = 0x01;                                 // LOADED_HIGH
  put<uint32_t>(b, 0x22C, 0x7FFFFFFF);             // initrd_addr_max
  put<uint32_t>(b, 0x230, 0x200000);               // kernel_alignment
  b[0x234] = 1;                                    // relocatable
  put<uint16_t>(b, 0x236, 0x7F);                   // xloadflags
  put<uint32_t>(b, 0x238, 2047);                   // cmdline_size
  put<uint64_t>(b, 0x258, 16 * kMiB);              // pref_address
  put<uint32_t>(b, 0x260, 52 * kMiB);              // init_size
  for (uint64_t i = 0; i < code_bytes; i++) b[(sects + 1) * 512 + i] = static_cast<uint8_t>(i * 7);
  return b;
}

}  // namespace

TEST_CASE("linux boot: the setup header of a bzImage is read", "[hv][linux]") {
  const auto img = bzimage();
  LinuxSetup s;
  REQUIRE(linux_parse(img.data(), img.size(), &s) == nullptr);
  CHECK(s.version == 0x020F);
  CHECK(s.setup_bytes == 4 * 512);
  CHECK(s.kernel_bytes == 64 * 1024);
  CHECK(s.pref_address == 16 * kMiB);
  CHECK(s.init_size == 52 * kMiB);
  CHECK(s.header_end == 0x26C);
  CHECK(s.cmdline_size == 2047);
  CHECK(s.relocatable);
  CHECK(guest_image_kind(img.data(), img.size()) == GuestImageKind::kLinuxBzImage);
}

TEST_CASE("linux boot: bad images are refused with the reason", "[hv][linux]") {
  LinuxSetup s;
  auto img = bzimage();
  SECTION("truncated inside the code") {
    const char* e = linux_parse(img.data(), img.size() - 1, &s);
    REQUIRE(e != nullptr);
    CHECK(std::strstr(e, "truncated"));
  }
  SECTION("truncated inside the header") {
    const char* e = linux_parse(img.data(), 0x240, &s);
    REQUIRE(e != nullptr);
    CHECK(std::strstr(e, "too short"));
  }
  SECTION("not a kernel") {
    img[0x202] = 'X';
    const char* e = linux_parse(img.data(), img.size(), &s);
    REQUIRE(e != nullptr);
    CHECK(std::strstr(e, "HdrS"));
    CHECK(guest_image_kind(img.data(), img.size()) == GuestImageKind::kUnknown);
  }
  SECTION("no boot flag") {
    img[0x1FE] = 0;
    CHECK(linux_parse(img.data(), img.size(), &s) != nullptr);
  }
  SECTION("protocol too old") {
    put<uint16_t>(img, 0x206, 0x020B);
    CHECK(std::strstr(linux_parse(img.data(), img.size(), &s), "2.12"));
  }
  SECTION("no 64-bit entry") {
    put<uint16_t>(img, 0x236, 0x7E);
    CHECK(std::strstr(linux_parse(img.data(), img.size(), &s), "64-bit"));
  }
  SECTION("not loaded high") {
    img[0x211] = 0;
    CHECK(std::strstr(linux_parse(img.data(), img.size(), &s), "loaded high"));
  }
  SECTION("syssize beyond the file") {
    put<uint32_t>(img, 0x1F4, 0x10000000);
    CHECK(std::strstr(linux_parse(img.data(), img.size(), &s), "truncated"));
  }
  SECTION("pref_address below 1 MiB") {
    put<uint64_t>(img, 0x258, 0x1000);
    CHECK(linux_parse(img.data(), img.size(), &s) != nullptr);
  }
}

TEST_CASE("linux boot: the plan checks RAM for the kernel, the initrd and the command line", "[hv][linux]") {
  const auto img = bzimage();
  LinuxSetup s;
  REQUIRE(linux_parse(img.data(), img.size(), &s) == nullptr);
  LinuxPlan p;
  REQUIRE(linux_plan(s, 256 * kMiB, 20, 3 * kMiB + 5, &p) == nullptr);
  CHECK(p.load_addr == 16 * kMiB);
  CHECK(p.entry == 16 * kMiB + 0x200);
  CHECK(p.kernel_end == 68 * kMiB);
  CHECK(p.initrd_bytes == 3 * kMiB + 5);
  CHECK(p.initrd_addr % 4096 == 0);
  CHECK(p.initrd_addr + p.initrd_bytes <= 256 * kMiB);
  CHECK(p.initrd_addr >= p.kernel_end);
  CHECK(p.cmdline_bytes == 21);
  // The initrd stays below initrd_addr_max (its last byte at most that address).
  LinuxSetup low = s;
  low.initrd_addr_max = 128 * kMiB - 1;
  REQUIRE(linux_plan(low, 256 * kMiB, 0, kMiB, &p) == nullptr);
  CHECK(p.initrd_addr + p.initrd_bytes <= 128 * kMiB);
  // Too little RAM for the kernel's window: named.
  const char* e = linux_plan(s, 64 * kMiB, 0, 0, &p);
  REQUIRE(e != nullptr);
  CHECK(std::strstr(e, "more RAM"));
  // Room for the kernel but not for the initrd above it.
  CHECK(std::strstr(linux_plan(s, 70 * kMiB, 0, 8 * kMiB, &p), "initrd"));
  // A command line over cmdline_size.
  CHECK(std::strstr(linux_plan(s, 256 * kMiB, 2048, 0, &p), "command line"));
}

TEST_CASE("linux boot: the zero page carries the header, the loader's fields and the e820 map", "[hv][linux]") {
  auto img = bzimage();
  img[0x250] = 0x5A;  // a byte of the header (setup_data), copied as it is
  LinuxSetup s;
  REQUIRE(linux_parse(img.data(), img.size(), &s) == nullptr);
  LinuxPlan p;
  REQUIRE(linux_plan(s, 256 * kMiB, 10, 2 * kMiB, &p) == nullptr);
  const RamRange ram[] = {{0, 256 * kMiB}};
  E820Entry map[8];
  const unsigned n = build_guest_memmap(ram, 1, map, 8);
  REQUIRE(n == 3);
  std::vector<uint8_t> zp(4096, 0xCC);
  REQUIRE(linux_build_zero_page(zp.data(), img.data(), s, p, map, n, 0xF0000));
  CHECK(zp[0] == 0);  // the rest is zeroed
  CHECK(std::memcmp(zp.data() + 0x202, "HdrS", 4) == 0);
  CHECK(zp[0x250] == 0x5A);
  CHECK(zp[0x26C] == 0);  // nothing beyond the header's end
  CHECK(zp[zp::kTypeOfLoader] == 0xFF);
  CHECK((zp[zp::kLoadflags] & 1) == 1);
  CHECK(get<uint32_t>(zp.data(), zp::kCmdLinePtr) == kLinuxCmdlineGpa);
  CHECK(get<uint32_t>(zp.data(), zp::kRamdiskImage) == p.initrd_addr);
  CHECK(get<uint32_t>(zp.data(), zp::kRamdiskSize) == 2 * kMiB);
  CHECK(get<uint64_t>(zp.data(), zp::kAcpiRsdpAddr) == 0xF0000);
  CHECK(get<uint32_t>(zp.data(), zp::kCode32Start) == 16 * kMiB);
  REQUIRE(zp[zp::kE820Entries] == 3);
  CHECK(get<uint64_t>(zp.data(), zp::kE820Table + 20) == kLegacyHoleStart);
  CHECK(get<uint32_t>(zp.data(), zp::kE820Table + 20 + 16) == kE820Reserved);
  CHECK(get<uint64_t>(zp.data(), zp::kE820Table + 40) == kLegacyHoleEnd);
  CHECK(get<uint64_t>(zp.data(), zp::kE820Table + 48) == 255 * kMiB);
  // More entries than the zero page holds.
  std::vector<E820Entry> big(129, E820Entry{0, 4096, 1});
  CHECK_FALSE(linux_build_zero_page(zp.data(), img.data(), s, p, big.data(), 129, 0));
}

TEST_CASE("linux boot: GDT and identity page tables", "[hv][linux]") {
  uint8_t gdt[kLinuxGdtBytes];
  linux_build_gdt(gdt);
  const uint64_t cs = get<uint64_t>(gdt, kLinuxBootCs), ds = get<uint64_t>(gdt, kLinuxBootDs);
  CHECK(get<uint64_t>(gdt, 0) == 0);
  CHECK(((cs >> 53) & 1) == 1);   // L
  CHECK(((cs >> 54) & 1) == 0);   // D
  CHECK(((cs >> 43) & 1) == 1);   // code
  CHECK(((cs >> 47) & 1) == 1);   // present
  CHECK(((ds >> 43) & 1) == 0);   // data
  CHECK(((ds >> 41) & 1) == 1);   // writable
  std::vector<uint8_t> pt(kLinuxPageTablePages * 4096);
  linux_build_page_tables(pt.data(), kLinuxPml4Gpa);
  // Walk a few addresses through the tables as the CPU would.
  for (uint64_t va : {0ull, 0x1000200ull, 0xF0000ull, 0xBFFFFFFFull, 0xFEE00000ull}) {
    const uint64_t pml4e = get<uint64_t>(pt.data(), ((va >> 39) & 511) * 8);
    REQUIRE((pml4e & 3) == 3);
    const uint64_t pdpte = get<uint64_t>(pt.data(), (pml4e & ~0xFFFull) - kLinuxPml4Gpa + ((va >> 30) & 511) * 8);
    REQUIRE((pdpte & 3) == 3);
    const uint64_t pde = get<uint64_t>(pt.data(), (pdpte & ~0xFFFull) - kLinuxPml4Gpa + ((va >> 21) & 511) * 8);
    REQUIRE((pde & 0x83) == 0x83);
    CHECK((pde & ~0x1FFFFFull & ((1ull << 52) - 1)) + (va & 0x1FFFFF) == va);
  }
}

TEST_CASE("guest memmap: RAM around the legacy hole, sorted and merged", "[hv][linux]") {
  E820Entry m[8];
  SECTION("one slot from 0") {
    const RamRange r[] = {{0, 64 * kMiB}};
    REQUIRE(build_guest_memmap(r, 1, m, 8) == 3);
    CHECK((m[0].addr == 0 && m[0].size == kLegacyHoleStart && m[0].type == kE820Ram));
    CHECK((m[1].addr == kLegacyHoleStart && m[1].size == kLegacyHoleEnd - kLegacyHoleStart && m[1].type == kE820Reserved));
    CHECK((m[2].addr == kLegacyHoleEnd && m[2].size == 63 * kMiB && m[2].type == kE820Ram));
  }
  SECTION("unsorted slots, touching ones merged, one above 4 GiB") {
    const RamRange r[] = {{8ull << 30, kMiB}, {32 * kMiB, 32 * kMiB}, {0, 32 * kMiB}};
    REQUIRE(build_guest_memmap(r, 3, m, 8) == 4);
    CHECK((m[2].addr == kLegacyHoleEnd && m[2].size == 63 * kMiB));
    CHECK((m[3].addr == (8ull << 30) && m[3].type == kE820Ram));
  }
  SECTION("refusals: overlap, too many entries, nothing") {
    const RamRange ov[] = {{0, 32 * kMiB}, {16 * kMiB, kMiB}};
    CHECK(build_guest_memmap(ov, 2, m, 8) == 0);
    const RamRange r[] = {{0, 64 * kMiB}};
    CHECK(build_guest_memmap(r, 1, m, 2) == 0);
    CHECK(build_guest_memmap(r, 0, m, 8) == 0);
  }
}

TEST_CASE("guest image: the loader is chosen by content", "[hv][linux]") {
  std::vector<uint8_t> mb(8192, 0);
  put<uint32_t>(mb, 0x40, 0x1BADB002);
  put<uint32_t>(mb, 0x44, 0x00010003);
  put<uint32_t>(mb, 0x48, static_cast<uint32_t>(0u - 0x1BADB002u - 0x00010003u));
  CHECK(guest_image_kind(mb.data(), mb.size()) == GuestImageKind::kMultiboot);
  put<uint32_t>(mb, 0x48, 0);  // bad checksum
  CHECK(guest_image_kind(mb.data(), mb.size()) == GuestImageKind::kUnknown);
  const uint8_t elf[] = {0x7F, 'E', 'L', 'F', 2, 1, 1, 0};
  CHECK(guest_image_kind(elf, sizeof elf) == GuestImageKind::kPvhElf);
  const uint8_t elf32[] = {0x7F, 'E', 'L', 'F', 1, 1, 1, 0};
  CHECK(guest_image_kind(elf32, sizeof elf32) == GuestImageKind::kUnknown);
  CHECK(guest_image_kind(elf, 3) == GuestImageKind::kUnknown);
}
