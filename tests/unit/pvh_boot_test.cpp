// The PVH boot ABI (hv/pvh_boot.h) against synthetic ELF64 images built here: the PHYS32
// entry note found among other notes (4- and 8-byte forms), the PT_LOAD segments, every
// refusal (truncated, not ELF64, no note, entry outside the segments, overlapping segments,
// segments outside RAM), the initrd's place and the start-info page's layout.
#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

#include "hv/guest_image.h"
#include "hv/pvh_boot.h"

using namespace hv;

namespace {

constexpr uint64_t kMiB = 1ull << 20;

template <class T>
void put(std::vector<uint8_t>& b, uint64_t off, T v) {
  if (b.size() < off + sizeof v) b.resize(off + sizeof v);
  std::memcpy(b.data() + off, &v, sizeof v);
}
template <class T>
T get(const uint8_t* b, uint64_t off) {
  T v;
  std::memcpy(&v, b + off, sizeof v);
  return v;
}

struct Seg {
  uint32_t type;
  uint64_t offset, paddr, filesz, memsz;
};

// An ELF64 x86-64 executable: header, program headers for `segs`, then the file up to
// `file_bytes` (segment contents are a pattern).
std::vector<uint8_t> elf(const std::vector<Seg>& segs, uint64_t file_bytes) {
  std::vector<uint8_t> b(file_bytes, 0);
  const uint8_t ident[16] = {0x7F, 'E', 'L', 'F', 2, 1, 1, 0};
  std::memcpy(b.data(), ident, 16);
  put<uint16_t>(b, 16, 2);    // ET_EXEC
  put<uint16_t>(b, 18, 62);   // EM_X86_64
  put<uint32_t>(b, 20, 1);
  put<uint64_t>(b, 24, 0x1000000);
  put<uint64_t>(b, 32, 64);   // phoff
  put<uint16_t>(b, 52, 64);
  put<uint16_t>(b, 54, 56);
  put<uint16_t>(b, 56, static_cast<uint16_t>(segs.size()));
  for (size_t i = 0; i < segs.size(); i++) {
    const uint64_t ph = 64 + i * 56;
    put<uint32_t>(b, ph, segs[i].type);
    put<uint32_t>(b, ph + 4, 5);
    put<uint64_t>(b, ph + 8, segs[i].offset);
    put<uint64_t>(b, ph + 16, 0xFFFFFFFF80000000ull + segs[i].paddr);
    put<uint64_t>(b, ph + 24, segs[i].paddr);
    put<uint64_t>(b, ph + 32, segs[i].filesz);
    put<uint64_t>(b, ph + 40, segs[i].memsz);
  }
  return b;
}

// A note: namesz, descsz, type, name padded to 4, desc padded to 4. Returns its length.
uint64_t note(std::vector<uint8_t>& b, uint64_t at, const char* name, uint32_t type, const void* desc, uint32_t descsz) {
  const uint32_t namesz = static_cast<uint32_t>(std::strlen(name) + 1);
  put<uint32_t>(b, at, namesz);
  put<uint32_t>(b, at + 4, descsz);
  put<uint32_t>(b, at + 8, type);
  std::memcpy(b.data() + at + 12, name, namesz);
  const uint64_t d = at + 12 + ((namesz + 3) & ~3u);
  std::memcpy(b.data() + d, desc, descsz);
  return d + ((descsz + 3) & ~3u) - at;
}

// A kernel like Debian's vmlinux, small: text at 16 MiB, data beyond, bss-like tail, and a
// note segment with an unrelated Xen note, a GNU note and the PHYS32 entry (8 bytes).
std::vector<uint8_t> kernel(uint32_t entry = 0x1000850, uint32_t entry_bytes = 8) {
  std::vector<Seg> segs = {{1, 0x1000, 0x1000000, 0x3000, 0x3000},
                           {1, 0x4000, 0x1200000, 0x1000, 0x80000},
                           {4, 0x5000, 0, 0x100, 0x100}};
  auto b = elf(segs, 0x6000);
  for (uint64_t i = 0x1000; i < 0x5000; i++) b[i] = static_cast<uint8_t>(i * 3);
  uint64_t at = 0x5000;
  const uint64_t other = 0xFFFFFFFF80000000ull;
  at += note(b, at, "Xen", 3, &other, 8);
  const uint8_t id[20] = {1, 2, 3};
  at += note(b, at, "GNU", 3, id, 20);
  const uint64_t e = entry;
  at += note(b, at, "Xen", kXenElfnotePhys32Entry, &e, entry_bytes);
  put<uint64_t>(b, 64 + 2 * 56 + 32, at - 0x5000);  // the note segment's filesz
  return b;
}

// The PHYS32 note follows a Xen note (12 + 4 + 8 bytes) and a GNU note (12 + 4 + 20).
constexpr uint64_t kThirdNote = 0x5000 + 24 + 36;

}  // namespace

TEST_CASE("pvh: the entry note and the segments of an ELF64 kernel", "[hv][linux]") {
  const auto k = kernel();
  CHECK(guest_image_kind(k.data(), k.size()) == GuestImageKind::kPvhElf);
  PvhImage img;
  REQUIRE(pvh_parse(k.data(), k.size(), &img) == nullptr);
  CHECK(img.entry == 0x1000850);
  REQUIRE(img.segments == 2);
  CHECK(img.seg[0].paddr == 0x1000000);
  CHECK(img.seg[1].memsz == 0x80000);
  CHECK(img.lo == 0x1000000);
  CHECK(img.hi == 0x1280000);
  const auto k4 = kernel(0x1000010, 4);
  REQUIRE(pvh_parse(k4.data(), k4.size(), &img) == nullptr);
  CHECK(img.entry == 0x1000010);
}

TEST_CASE("pvh: bad images are refused with the reason", "[hv][linux]") {
  PvhImage img;
  auto k = kernel();
  SECTION("truncated: the segments reach beyond the file") {
    const char* e = pvh_parse(k.data(), 0x4800, &img);
    REQUIRE(e != nullptr);
    CHECK(std::strstr(e, "beyond the file"));
  }
  SECTION("truncated inside the header") { CHECK(pvh_parse(k.data(), 40, &img) != nullptr); }
  SECTION("no PVH note") {
    auto n = kernel(0x1000850, 8);
    put<uint32_t>(n, kThirdNote + 8, 17);  // retype the PHYS32 note
    const char* e = pvh_parse(n.data(), n.size(), &img);
    REQUIRE(e != nullptr);
    CHECK(std::strstr(e, "PHYS32_ENTRY"));
  }
  SECTION("entry outside the segments") {
    auto n = kernel(0x2000000);
    CHECK(std::strstr(pvh_parse(n.data(), n.size(), &img), "entry point"));
  }
  SECTION("an entry note above 4 GiB") {
    auto n = kernel();
    put<uint32_t>(n, kThirdNote + 16 + 4, 1);  // high half of the 8-byte entry
    CHECK(pvh_parse(n.data(), n.size(), &img) != nullptr);
  }
  SECTION("not x86-64") {
    put<uint16_t>(k, 18, 3);
    CHECK(std::strstr(pvh_parse(k.data(), k.size(), &img), "x86-64"));
  }
  SECTION("ELF32") {
    k[4] = 1;
    CHECK(pvh_parse(k.data(), k.size(), &img) != nullptr);
    CHECK(guest_image_kind(k.data(), k.size()) == GuestImageKind::kUnknown);
  }
  SECTION("overlapping segments") {
    put<uint64_t>(k, 64 + 56 + 24, 0x1001000);
    CHECK(std::strstr(pvh_parse(k.data(), k.size(), &img), "overlap"));
  }
  SECTION("a malformed note (descsz beyond the segment)") {
    put<uint32_t>(k, 0x5000 + 4, 0x1000);
    CHECK(std::strstr(pvh_parse(k.data(), k.size(), &img), "note"));
  }
}

TEST_CASE("pvh: RAM checks and the initrd's place", "[hv][linux]") {
  const auto k = kernel();
  PvhImage img;
  REQUIRE(pvh_parse(k.data(), k.size(), &img) == nullptr);
  PvhPlan p;
  REQUIRE(pvh_plan(img, 64 * kMiB, 30, 5 * kMiB + 1, &p) == nullptr);
  CHECK(p.initrd_bytes == 5 * kMiB + 1);
  CHECK(p.initrd_addr % 4096 == 0);
  CHECK(p.initrd_addr >= img.hi);
  CHECK(p.initrd_addr + p.initrd_bytes <= 64 * kMiB);
  CHECK(p.cmdline_bytes == 31);
  CHECK(std::strstr(pvh_plan(img, 18 * kMiB, 0, 0, &p), "more RAM"));
  CHECK(std::strstr(pvh_plan(img, 20 * kMiB, 0, 8 * kMiB, &p), "initrd"));
  CHECK(pvh_plan(img, 20 * kMiB, kPvhMaxCmdline + 1, 0, &p) != nullptr);
}

TEST_CASE("pvh: the start info, module list and memory map", "[hv][linux]") {
  PvhPlan p;
  p.initrd_addr = 0x3000000;
  p.initrd_bytes = 12345;
  const E820Entry map[3] = {{0, 0x9F000, kE820Ram}, {0x9F000, 0x61000, kE820Reserved}, {0x100000, 63 * kMiB, kE820Ram}};
  std::vector<uint8_t> page(4096, 0xCC);
  REQUIRE(pvh_build_start_info(page.data(), p, map, 3, 0xF0000));
  const PvhStartInfo si = get<PvhStartInfo>(page.data(), 0);
  CHECK(si.magic == 0x336EC578);
  CHECK(si.version == 1);
  CHECK(si.nr_modules == 1);
  CHECK(si.cmdline_paddr == kPvhCmdlineGpa);
  CHECK(si.rsdp_paddr == 0xF0000);
  CHECK(si.memmap_entries == 3);
  REQUIRE(si.modlist_paddr == kPvhInfoGpa + kPvhModlistOffset);
  const PvhModlistEntry m = get<PvhModlistEntry>(page.data(), kPvhModlistOffset);
  CHECK((m.paddr == 0x3000000 && m.size == 12345));
  REQUIRE(si.memmap_paddr == kPvhInfoGpa + kPvhMemmapOffset);
  const PvhMemmapEntry e1 = get<PvhMemmapEntry>(page.data(), kPvhMemmapOffset + 24);
  CHECK((e1.addr == 0x9F000 && e1.size == 0x61000 && e1.type == kE820Reserved && e1.reserved == 0));
  // No initrd: no module list.
  PvhPlan none;
  REQUIRE(pvh_build_start_info(page.data(), none, map, 3, 0));
  CHECK(get<PvhStartInfo>(page.data(), 0).nr_modules == 0);
  CHECK(get<PvhStartInfo>(page.data(), 0).modlist_paddr == 0);
  // Too many map entries for the page.
  std::vector<E820Entry> big(kPvhMaxMemmap + 1, E820Entry{0, 4096, 1});
  CHECK_FALSE(pvh_build_start_info(page.data(), p, big.data(), kPvhMaxMemmap + 1, 0));
}
